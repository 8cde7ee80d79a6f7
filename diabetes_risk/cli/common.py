"""What every command group shares: the consoles, settings from flags and environment, and the checks that
the local cloud is up and the stack deployed."""

from __future__ import annotations

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.errors import MarkupError
from rich.table import Table
from rich.text import Text

from localcloud import runtime
from localcloud.settings import LocalCloudSettings

console = Console(soft_wrap=True)  # piped output: whole lines, never wrapped at 80 columns
err = Console(stderr=True, soft_wrap=True)


def settings_from(localstack_port: int | None, mlflow_port: int | None, **ports: int | None) -> LocalCloudSettings:
    given = {"localstack_port": localstack_port, "mlflow_port": mlflow_port, **ports}
    overrides = {k: v for k, v in given.items() if v is not None}
    try:
        return LocalCloudSettings(**overrides)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        err.print(f"[red]Bad local cloud settings[/red]: {problems}")
        raise typer.Exit(2) from exc


def refuse_external(settings: LocalCloudSettings) -> None:
    if settings.external:
        err.print(
            "[red]DR_EXTERNAL is set[/red]: docker compose runs the services; this command is for the embedded "
            "local cloud (use `make compose-up` / `make compose-down`, or unset DR_EXTERNAL)"
        )
        raise typer.Exit(2)


def require_up(cloud: LocalCloudSettings) -> None:
    if not runtime.is_up(cloud):
        err.print("[red]the local cloud is not running[/red]: start it with `diabetes-risk local up`")
        raise typer.Exit(1)


def deployed_outputs(cloud: LocalCloudSettings) -> dict[str, str]:
    from diabetes_risk.deploy import DeployError, stack_outputs

    try:
        return stack_outputs(cloud)
    except DeployError as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from exc


LocalstackPort = typer.Option(
    None, "--localstack-port", help="LocalStack gateway port (env DR_LOCALSTACK_PORT, default 4566)."
)
MlflowPort = typer.Option(None, "--mlflow-port", help="MLflow server port (env DR_MLFLOW_PORT, default 5000).")
PrometheusPort = typer.Option(None, "--prometheus-port", help="Prometheus port (env DR_PROMETHEUS_PORT, default 9090).")
AlertmanagerPort = typer.Option(
    None, "--alertmanager-port", help="Alertmanager port (env DR_ALERTMANAGER_PORT, default 9093)."
)
AlertsPort = typer.Option(
    None, "--alerts-port", help="The alert inbox (webhook) port (env DR_ALERTS_PORT, default 9095)."
)
ConsolePort = typer.Option(
    None, "--console-port", help="The browser console's port (env DR_CONSOLE_PORT, default 8088)."
)


def print_table(table: Table, out: Console | None = None) -> None:
    """A rich table on a terminal; piped (CI logs, `make demo > log`) it would be cut at 80 columns into broken
    boxes, so there it is printed as plain lines: a title, then one tab-separated line per row."""
    out = out or console
    if out.is_terminal:
        out.print(table)
        return
    cells = [[_plain(c) for c in column._cells] for column in table.columns]
    lines = [_plain(table.title)] if table.title else []
    lines.append("\t".join(str(c.header) for c in table.columns))
    lines += ["\t".join(row) for row in zip(*cells, strict=True)]
    out.file.write("\n".join(lines) + "\n")  # written as is: the console would expand the tabs
    out.file.flush()


def _plain(cell) -> str:
    """A cell's text without its colour markup; data that only looks like markup ("[/x]") is kept as it is."""
    try:
        return Text.from_markup(str(cell)).plain
    except MarkupError:
        return str(cell)
