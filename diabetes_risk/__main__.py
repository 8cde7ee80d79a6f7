from diabetes_risk.cli_main import main

main()
