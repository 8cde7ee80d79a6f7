"""The `diabetes-risk` command line: one module per command group (local, pipeline, serving, models, features,
access, monitoring, console)."""

from __future__ import annotations

import typer

from diabetes_risk.cli import access, console, features, local, models, monitoring, pipeline, serving

app = typer.Typer(
    help="Diabetes Risk: train, deploy and serve a diabetes risk model on AWS or the embedded local cloud.",
    no_args_is_help=True,
    add_completion=False,
)
app.add_typer(local.local_app, name="local")
pipeline.register(app)
serving.register(app)
models.register(app)
features.register(app)
access.register(app)
monitoring.register(app)
console.register(app)


if __name__ == "__main__":
    app()
