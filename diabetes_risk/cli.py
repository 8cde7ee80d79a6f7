"""The `diabetes-risk` command line."""

from __future__ import annotations

import json

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from localcloud import runtime
from localcloud.install import InstallError, ensure_localstack
from localcloud.settings import LocalCloudSettings

app = typer.Typer(
    help="Diabetes Risk: train, deploy and serve a diabetes risk model on AWS or the embedded local cloud.",
    no_args_is_help=True,
    add_completion=False,
)
local_app = typer.Typer(
    help="The embedded local cloud (LocalStack in host mode + MLflow): no Docker, no AWS account.",
    no_args_is_help=True,
)
app.add_typer(local_app, name="local")
console = Console()
err = Console(stderr=True)


def _settings(localstack_port: int | None, mlflow_port: int | None) -> LocalCloudSettings:
    overrides = {
        k: v for k, v in {"localstack_port": localstack_port, "mlflow_port": mlflow_port}.items() if v is not None
    }
    try:
        return LocalCloudSettings(**overrides)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        err.print(f"[red]Bad local cloud settings[/red]: {problems}")
        raise typer.Exit(2) from exc


LocalstackPort = typer.Option(
    None, "--localstack-port", help="LocalStack gateway port [env DR_LOCALSTACK_PORT, default 4566]."
)
MlflowPort = typer.Option(None, "--mlflow-port", help="MLflow server port [env DR_MLFLOW_PORT, default 5000].")


@local_app.command("install")
def local_install(
    force: bool = typer.Option(False, help="Reinstall even if the pins have not changed."),
) -> None:
    """Install LocalStack 4.14.0 and the host Lambda executor into their own venv (cached)."""
    settings = _settings(None, None)
    with console.status("installing LocalStack (first time: a minute or two)"):
        try:
            did = ensure_localstack(settings, force=force)
        except InstallError as exc:
            err.print(f"[red]{exc}[/red]")
            raise typer.Exit(1) from exc
    console.print(f"LocalStack venv {'installed' if did else 'already up to date'}: {settings.localstack_venv}")


@local_app.command("up")
def local_up(localstack_port: int | None = LocalstackPort, mlflow_port: int | None = MlflowPort) -> None:
    """Start LocalStack and MLflow, wait until healthy, print the endpoints. Safe to run twice."""
    settings = _settings(localstack_port, mlflow_port)
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
    console.print(f"  MLflow UI:                 {settings.mlflow_url}")
    console.print(f"  state and logs:            {settings.run_dir}")
    console.print("  use from a shell:          eval $(diabetes-risk local env)")


@local_app.command("down")
def local_down() -> None:
    """Stop everything `local up` started, including Lambda environments."""
    settings = _settings(None, None)
    stopped = runtime.down(settings, progress=lambda m: console.print(m))
    console.print("stopped: " + (", ".join(stopped) if stopped else "nothing was running"))


@local_app.command("status")
def local_status(
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Show whether LocalStack and MLflow are running and healthy, and their memory."""
    settings = _settings(None, None)
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
        console.print(table)
    if not all(s.healthy for s in states):
        raise typer.Exit(1)


@local_app.command("env")
def local_env() -> None:
    """Print shell exports that point AWS CLIs/SDKs and MLflow at the local cloud."""
    for key, value in _settings(None, None).client_env().items():
        typer.echo(f"export {key}={value}")


@local_app.command("check")
def local_check() -> None:
    """Smoke-check a running local cloud: S3, a Python Lambda (cold and warm), MLflow artifacts in S3."""
    from localcloud.smoke import run_check

    settings = _settings(None, None)
    if not runtime.is_up(settings):
        err.print("[red]the local cloud is not running[/red]: start it with `diabetes-risk local up`")
        raise typer.Exit(1)
    with console.status("checking the local cloud") as spinner:
        try:
            figures = run_check(settings, progress=lambda m: spinner.update(m))
        except Exception as exc:
            err.print(f"[red]local cloud check failed:[/red] {exc}")
            raise typer.Exit(1) from exc
    console.print(f"[green]local cloud check passed[/green]: {figures}")


@app.command("train")
def train(
    in_process: bool = typer.Option(
        False, "--in-process", help="Run every step in this process against the local cloud (S3 + MLflow)."
    ),
    data: str = typer.Option(
        "bundled", help="Training data: 'bundled' (MASS Pima.tr2), a CSV/Parquet path or s3:// URI."
    ),
    holdout: str = typer.Option("bundled", help="Holdout data: 'bundled' (MASS Pima.te), a path or s3:// URI."),
    families: str = typer.Option(
        "logistic_regression,random_forest,xgboost", help="Comma-separated model families to train."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Train, evaluate, export to ONNX, register in MLflow and promote through the quality gate."""
    if not in_process:
        err.print(
            "[red]Training through Step Functions needs the deployed training stack, which this version "
            "does not include yet.[/red] Run the same steps in one process with: diabetes-risk train --in-process"
        )
        raise typer.Exit(2)
    import os

    from training.data import DataError
    from training.export import ExportError
    from training.models import FAMILIES
    from training.pipeline import STAGES, run_training
    from training.settings import TrainingSettings

    chosen = tuple(f.strip() for f in families.split(",") if f.strip())
    unknown = sorted(set(chosen) - set(FAMILIES))
    if unknown or not chosen:
        given = ", ".join(unknown) or "(none given)"
        err.print(f"[red]unknown model families: {given}[/red]; choose from {', '.join(FAMILIES)}")
        raise typer.Exit(2)
    cloud = _settings(None, None)
    if not runtime.is_up(cloud):
        err.print("[red]the local cloud is not running[/red]: start it with `diabetes-risk local up`")
        raise typer.Exit(1)
    os.environ.update(cloud.client_env())
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")  # we print our own summary
    try:
        settings = TrainingSettings()
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        err.print(f"[red]Bad training settings[/red]: {problems}")
        raise typer.Exit(2) from exc
    from localcloud.smoke import clients

    (s3,) = clients(cloud, "s3")
    for bucket in (settings.artifacts_bucket, settings.data_bucket):
        s3.create_bucket(Bucket=bucket)

    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=console) as bar:
        tasks = {name: bar.add_task(f"[dim]{name}[/dim]", total=1, start=False) for name in STAGES}
        current: list[str] = []

        def progress(stage: str, message: str) -> None:
            if current:
                bar.update(tasks[current[-1]], completed=1)
            current.append(stage)
            bar.start_task(tasks[stage])
            bar.update(tasks[stage], description=f"{stage}: {message}")

        try:
            result = run_training(settings, data, holdout, progress=progress, families=chosen, s3=s3)
        except (DataError, ExportError) as exc:
            err.print(f"[red]training stopped:[/red] {exc}")
            raise typer.Exit(1) from exc
        if current:
            bar.update(tasks[current[-1]], completed=1)
    if as_json:
        typer.echo(result.model_dump_json(indent=2))
        return
    table = Table("family", "CV ROC AUC", "holdout ROC AUC", "PR AUC", "Brier", "sensitivity", "specificity")
    for family, m in result.holdout.items():
        mark = " ✓" if family == result.selected_family else ""
        table.add_row(
            family + mark,
            f"{result.cv[family]['cv_auc_mean']:.3f}",
            f"{m['roc_auc']:.3f}",
            f"{m['pr_auc']:.3f}",
            f"{m['brier']:.3f}",
            f"{m['sensitivity']:.2f}",
            f"{m['specificity']:.2f}",
        )
    console.print(table)
    console.print(
        f"selected [bold]{result.selected_family}[/bold] → registered {MODEL_LABEL} v{result.model_version}; "
        f"ONNX parity {result.onnx_parity_max_abs_diff:.1e}"
    )
    verdict = "[green]promoted to champion[/green]" if result.promoted else "[yellow]not promoted[/yellow]"
    console.print(f"{verdict}: {result.gate_reason}")
    if result.pointer_uri:
        console.print(f"serving pointer: {result.pointer_uri}")
    console.print(f"MLflow run: {cloud.mlflow_url}/#/experiments (run {result.mlflow_run_id})")
    console.print("stage times (s): " + ", ".join(f"{k} {v:.1f}" for k, v in result.timings_s.items()))


MODEL_LABEL = "diabetes-risk"


if __name__ == "__main__":
    app()
