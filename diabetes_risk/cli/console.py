"""`diabetes-risk console`: the browser console (Step Functions runs live, models, batches) on 127.0.0.1."""

from __future__ import annotations

import typer
from pydantic import ValidationError

from diabetes_risk.cli.common import console, err


def register(app: typer.Typer) -> None:
    app.command("console")(console_command)


def console_command(
    port: int | None = typer.Option(None, help="Port on 127.0.0.1 (env DR_CONSOLE_PORT, default 8088)."),
    target: str = typer.Option("local", help="'local' (the embedded local cloud) or 'aws' (your AWS credentials)."),
    mlflow_url: str | None = typer.Option(None, help="MLflow tracking server (target aws; local uses the local one)."),
) -> None:
    """Serve the console in the foreground (`local up` also starts one): the training state machine drawn from
    its deployed definition, executions live with their history, the model registry and the batches."""
    from console.__main__ import serve
    from console.settings import ConsoleSettings

    if target not in ("local", "aws"):
        err.print(f"[red]unknown target {target!r}[/red]: choose 'local' or 'aws'")
        raise typer.Exit(2)
    try:
        settings = ConsoleSettings(**({"port": port} if port else {}))
    except ValidationError as exc:
        err.print(f"[red]bad console settings[/red]: {exc.errors()[0]['loc'][0]}: {exc.errors()[0]['msg']}")
        raise typer.Exit(2) from exc
    from botocore.exceptions import NoRegionError

    from localcloud.runtime import port_in_use

    if port_in_use(settings.host, settings.port):
        err.print(
            f"[red]port {settings.port} is in use[/red]: `local up` starts a console there "
            f"(http://{settings.host}:{settings.port}/); choose another with --port or DR_CONSOLE_PORT"
        )
        raise typer.Exit(1)
    console.print(f"console on http://{settings.host}:{settings.port}/  (Ctrl-C stops it)")
    try:
        serve(settings.port, target, mlflow_url)
    except NoRegionError as exc:
        err.print("[red]no AWS region configured[/red]: set AWS_REGION (or a profile's region) for --target aws")
        raise typer.Exit(2) from exc
