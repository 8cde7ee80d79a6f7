from diabetes_risk.cli import app

app(prog_name="diabetes-risk")
