"""`diabetes-risk local ...`: the embedded local cloud (LocalStack in host mode, MLflow, Prometheus)."""

from __future__ import annotations

import json

import typer
from rich.table import Table

from diabetes_risk.cli.common import (
    AlertmanagerPort,
    AlertsPort,
    ConsolePort,
    LocalstackPort,
    MlflowPort,
    PrometheusPort,
    console,
    err,
    print_table,
    refuse_external,
    require_up,
    settings_from,
)
from localcloud import runtime
from localcloud.install import InstallError, ensure_localstack
from localcloud.settings import LocalCloudSettings

local_app = typer.Typer(
    help="The embedded local cloud (LocalStack in host mode + MLflow): no Docker, no AWS account.",
    no_args_is_help=True,
)


@local_app.command("install")
def local_install(
    force: bool = typer.Option(False, help="Reinstall even if the pins have not changed."),
) -> None:
    """Install LocalStack 4.14.0 and the host Lambda executor into their own venv (cached)."""
    settings = settings_from(None, None)
    with console.status("installing LocalStack (first time: a minute or two)"):
        try:
            did = ensure_localstack(settings, force=force)
        except InstallError as exc:
            err.print(f"[red]{exc}[/red]")
            raise typer.Exit(1) from exc
    console.print(f"LocalStack venv {'installed' if did else 'already up to date'}: {settings.localstack_venv}")


@local_app.command("up")
def local_up(
    localstack_port: int | None = LocalstackPort,
    mlflow_port: int | None = MlflowPort,
    prometheus_port: int | None = PrometheusPort,
    alertmanager_port: int | None = AlertmanagerPort,
    alerts_port: int | None = AlertsPort,
    console_port: int | None = ConsolePort,
) -> None:
    """Start LocalStack, MLflow, Prometheus, Alertmanager, the alert inbox and the console; wait until healthy;
    print the endpoints. Safe to run twice."""
    settings = settings_from(
        localstack_port,
        mlflow_port,
        prometheus_port=prometheus_port,
        alertmanager_port=alertmanager_port,
        alerts_port=alerts_port,
        console_port=console_port,
    )
    refuse_external(settings)
    with console.status("starting the local cloud") as spinner:
        try:
            seconds = runtime.up(settings, progress=lambda m: spinner.update(m))
        except (runtime.LocalCloudError, InstallError) as exc:
            err.print(f"[red]local cloud did not start:[/red] {exc}")
            raise typer.Exit(1) from exc
    if seconds:
        console.print(f"[green]local cloud up[/green] in {seconds:.1f} s")
    else:
        console.print("[green]local cloud already running[/green]")
    _print_endpoints(settings)


def _print_endpoints(settings: LocalCloudSettings) -> None:
    console.print(f"  AWS endpoint (LocalStack): {settings.localstack_url}")
    console.print(f"  console:                   {settings.console_url}/  (pipeline, executions, models, batches)")
    console.print(f"  MLflow UI:                 {settings.mlflow_url}")
    console.print(f"  Prometheus:                {settings.prometheus_url}  (alerts: {settings.prometheus_url}/alerts)")
    console.print(f"  Alertmanager:              {settings.alertmanager_url}  (notifications: diabetes-risk alerts)")
    console.print(f"  state and logs:            {settings.run_dir}")
    try:  # once the stack is deployed, where its API and training runs are
        from diabetes_risk.deploy import stack_outputs
        from diabetes_risk.predict_client import local_api_url

        outputs = stack_outputs(settings)
        console.print(
            f"  prediction API:            {local_api_url(settings.localstack_url, outputs['ApiId'])}/predict"
        )
        console.print(f"  training state machine:    {outputs['TrainingStateMachineArn']}")
        console.print(
            "  try:                       diabetes-risk metrics "
            "'sum(sum_over_time(diabetes_risk_predictions_high{service=\"predict\"}[1h]))'"
        )
        console.print(
            "                             diabetes-risk metrics "
            "'max(quantile_over_time(0.99, diabetes_risk_latency{service=\"predict\"}[5m]))'"
        )
    except Exception:  # not deployed yet (or the local cloud is down): nothing more to show
        pass
    console.print("  use from a shell:          eval $(diabetes-risk local env)")


@local_app.command("down")
def local_down() -> None:
    """Stop everything `local up` started, including Lambda environments."""
    settings = settings_from(None, None)
    refuse_external(settings)
    stopped = runtime.down(settings, progress=lambda m: console.print(m))
    console.print("stopped: " + (", ".join(stopped) if stopped else "nothing was running"))


@local_app.command("status")
def local_status(
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Show whether LocalStack and MLflow are running and healthy, and their memory."""
    settings = settings_from(None, None)
    states = runtime.status(settings)
    if as_json:
        console.print_json(json.dumps([s.__dict__ for s in states]))
    else:
        table = Table("service", "pid", "running", "healthy", "processes", "RSS MB", "health URL")
        for s in states:
            table.add_row(
                s.name,
                str(s.pid or "-"),
                "yes" if s.running else "no",
                "[green]yes[/green]" if s.healthy else "[red]no[/red]",
                str(s.processes),
                f"{s.rss_mb:.0f}",
                s.url,
            )
        print_table(table)
    if not all(s.healthy for s in states):
        raise typer.Exit(1)


@local_app.command("env")
def local_env() -> None:
    """Print shell exports that point AWS CLIs/SDKs and MLflow at the local cloud."""
    for key, value in settings_from(None, None).client_env().items():
        typer.echo(f"export {key}={value}")


@local_app.command("check")
def local_check() -> None:
    """Smoke-check a running local cloud: S3, a Python Lambda (cold and warm), MLflow artifacts in S3."""
    from localcloud.smoke import run_check

    settings = settings_from(None, None)
    refuse_external(settings)  # it looks for MLflow's artifacts in LocalStack's S3 (compose keeps them in MinIO)
    require_up(settings)
    with console.status("checking the local cloud") as spinner:
        try:
            figures = run_check(settings, progress=lambda m: spinner.update(m))
        except Exception as exc:
            err.print(f"[red]local cloud check failed:[/red] {exc}")
            raise typer.Exit(1) from exc
    console.print(f"[green]local cloud check passed[/green]: {figures}")
