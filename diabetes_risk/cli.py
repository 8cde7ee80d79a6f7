"""The `diabetes-risk` command line."""

from __future__ import annotations

import json
import time
from pathlib import Path

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from diabetes_risk.monitoring_cli import register as register_monitoring_commands
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


def _settings(localstack_port: int | None, mlflow_port: int | None, **ports: int | None) -> LocalCloudSettings:
    given = {"localstack_port": localstack_port, "mlflow_port": mlflow_port, **ports}
    overrides = {k: v for k, v in given.items() if v is not None}
    try:
        return LocalCloudSettings(**overrides)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        err.print(f"[red]Bad local cloud settings[/red]: {problems}")
        raise typer.Exit(2) from exc


def _refuse_external(settings: LocalCloudSettings) -> None:
    if settings.external:
        err.print(
            "[red]DR_EXTERNAL is set[/red]: docker compose runs the services; this command is for the embedded "
            "local cloud (use `make compose-up` / `make compose-down`, or unset DR_EXTERNAL)"
        )
        raise typer.Exit(2)


def _require_up(cloud: LocalCloudSettings) -> None:
    if not runtime.is_up(cloud):
        err.print("[red]the local cloud is not running[/red]: start it with `diabetes-risk local up`")
        raise typer.Exit(1)


def _deployed_outputs(cloud: LocalCloudSettings) -> dict[str, str]:
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
def local_up(
    localstack_port: int | None = LocalstackPort,
    mlflow_port: int | None = MlflowPort,
    prometheus_port: int | None = PrometheusPort,
    alertmanager_port: int | None = AlertmanagerPort,
    alerts_port: int | None = AlertsPort,
) -> None:
    """Start LocalStack, MLflow, Prometheus, Alertmanager and the alert inbox; wait until healthy; print the
    endpoints. Safe to run twice."""
    settings = _settings(
        localstack_port,
        mlflow_port,
        prometheus_port=prometheus_port,
        alertmanager_port=alertmanager_port,
        alerts_port=alerts_port,
    )
    _refuse_external(settings)
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
    settings = _settings(None, None)
    _refuse_external(settings)
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
    _refuse_external(settings)  # it looks for MLflow's artifacts in LocalStack's S3 (compose keeps them in MinIO)
    _require_up(settings)
    with console.status("checking the local cloud") as spinner:
        try:
            figures = run_check(settings, progress=lambda m: spinner.update(m))
        except Exception as exc:
            err.print(f"[red]local cloud check failed:[/red] {exc}")
            raise typer.Exit(1) from exc
    console.print(f"[green]local cloud check passed[/green]: {figures}")


@app.command("deploy")
def deploy(
    target: str = typer.Option("local", help="'local' (cdklocal into the embedded local cloud) or 'aws' (cdk deploy)."),
    mlflow_uri: str | None = typer.Option(
        None, help="MLflow tracking server for target aws (env MLFLOW_TRACKING_URI); local uses the local one."
    ),
) -> None:
    """Deploy the CDK app (storage, training functions, state machine, schedule, new-data trigger)."""
    import os

    from diabetes_risk.deploy import DeployError, deploy_aws, deploy_local

    if target not in ("local", "aws"):
        err.print(f"[red]unknown target {target!r}[/red]: choose 'local' or 'aws'")
        raise typer.Exit(2)
    cloud = _settings(None, None)
    try:
        if target == "aws":
            uri = mlflow_uri or os.environ.get("MLFLOW_TRACKING_URI")
            if not uri:
                err.print("[red]target aws needs an MLflow tracking server[/red]: --mlflow-uri or MLFLOW_TRACKING_URI")
                raise typer.Exit(2)
            deploy_aws(uri, console.print, cloud.logs_dir)
            return
        _require_up(cloud)
        with console.status("deploying to the local cloud with cdklocal") as spinner:
            result = deploy_local(cloud, lambda line: spinner.update(f"cdklocal: {line[:100]}"))
    except DeployError as exc:
        err.print(f"[red]deploy failed:[/red] {exc}")
        raise typer.Exit(1) from exc
    times = ", ".join(f"{k.removesuffix('_s')} {v:.1f} s" for k, v in result["timings"].items())
    console.print(f"[green]deployed[/green] DiabetesRisk to the local cloud ({times})")
    for key, value in result["outputs"].items():
        console.print(f"  {key}: {value}")


def _parse_fault(spec: str | None) -> dict | None:
    if not spec:
        return None
    step, _, mode = spec.partition(":")
    steps = ("validate", "features", "train", "evaluate", "export", "register", "promote")
    if step not in steps or mode not in ("", "once", "always"):
        err.print(f"[red]bad --inject-fault {spec!r}[/red]: use STEP[:once|always] with STEP one of {', '.join(steps)}")
        raise typer.Exit(2)
    return {"step": step, "mode": mode or "once"}


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
    inject_fault: str | None = typer.Option(
        None, help="Test the pipeline's Retry/Catch: make STEP fail once (retried) or always (failure path)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Train, evaluate, export to ONNX, register in MLflow and promote through the quality gate.

    By default this starts the deployed Step Functions state machine and follows it state by state
    (exit 1 naming the failed state and its cause); --in-process runs the same steps here."""
    from training.models import FAMILIES

    chosen = tuple(f.strip() for f in families.split(",") if f.strip())
    unknown = sorted(set(chosen) - set(FAMILIES))
    if unknown or not chosen:
        given = ", ".join(unknown) or "(none given)"
        err.print(f"[red]unknown model families: {given}[/red]; choose from {', '.join(FAMILIES)}")
        raise typer.Exit(2)
    fault = _parse_fault(inject_fault)
    cloud = _settings(None, None)
    _require_up(cloud)
    if in_process:
        if fault:
            err.print("[red]--inject-fault tests the state machine's Retry/Catch[/red]; it has no effect --in-process")
            raise typer.Exit(2)
        _train_in_process(cloud, data, holdout, chosen, as_json)
    else:
        _train_state_machine(cloud, data, holdout, chosen, fault, as_json)


def _train_state_machine(
    cloud, data: str, holdout: str, families: tuple[str, ...], fault: dict | None, as_json: bool
) -> None:
    import uuid

    from diabetes_risk.runs import failure_record, follow
    from localcloud.smoke import clients

    outputs = _deployed_outputs(cloud)
    sfn, s3 = clients(cloud, "stepfunctions", "s3")
    payload = {"train_uri": data, "holdout_uri": holdout, "families": list(families)}
    if fault:
        payload["fault"] = fault
    name = time.strftime("train-%Y%m%dT%H%M%S-") + uuid.uuid4().hex[:6]
    arn = sfn.start_execution(stateMachineArn=outputs["TrainingStateMachineArn"], name=name, input=json.dumps(payload))[
        "executionArn"
    ]
    out = err if as_json else console
    out.print(f"started execution [bold]{name}[/bold]")

    def show(event) -> None:
        if event.kind == "entered" and not event.state.endswith("failed"):
            out.print(f"  → {event.state}")
        elif event.kind == "succeeded" and event.state not in ("Init",) and not event.state.endswith("failed"):
            out.print(f"  [green]✓[/green] {event.state} [dim]{event.seconds:.1f} s[/dim]")
        elif event.kind == "failed":
            out.print(f"  [red]✗[/red] {event.state}: {event.detail[:200]}")

    outcome = follow(sfn, arn, show)
    if outcome.status != "SUCCEEDED":
        record = failure_record(s3, outputs["ArtifactsBucket"], name) or {}
        step = record.get("failed_step", "unknown step")
        cause = record.get("message") or outcome.status
        err.print(f"[red]training failed in state {step!r}[/red]: {cause}")
        if as_json:
            typer.echo(
                json.dumps(
                    {
                        "execution": name,
                        "status": outcome.status,
                        "failed_step": step,
                        "cause": cause,
                        "seconds": outcome.seconds,
                        "state_seconds": outcome.state_seconds,
                    }
                )
            )
        raise typer.Exit(1)
    result = outcome.output or {}
    promote = result.get("promote", {})
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "execution": name,
                    "status": outcome.status,
                    "seconds": outcome.seconds,
                    "state_seconds": outcome.state_seconds,
                    "run_id": result.get("run_id"),
                    "evaluate": result.get("evaluate"),
                    "register": result.get("register"),
                    "promote": promote,
                },
                default=str,
            )
        )
        return
    evaluated = result.get("evaluate", {})
    console.print(
        f"[green]SUCCEEDED[/green] in {outcome.seconds:.0f} s: selected {evaluated.get('selected')} "
        f"(holdout ROC AUC {evaluated.get('holdout', {}).get('roc_auc', float('nan')):.3f}), "
        f"registered v{result.get('register', {}).get('model_version')}"
    )
    verdict = "[green]promoted to champion[/green]" if promote.get("promoted") else "[yellow]not promoted[/yellow]"
    console.print(f"{verdict}: {promote.get('reason')}")


def _train_in_process(cloud, data: str, holdout: str, chosen: tuple[str, ...], as_json: bool) -> None:
    import os

    from training.data import DataError
    from training.export import ExportError
    from training.pipeline import STAGES, run_training
    from training.settings import TrainingSettings

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


@app.command("predict")
def predict(
    json_body: str | None = typer.Option(None, "--json", help='One patient (or {"patients": [...]}) as JSON.'),
    file: str | None = typer.Option(None, "--file", help="CSV/Parquet of patients (canonical, MASS or Kaggle)."),
    out: str | None = typer.Option(None, "--out", help="With --file: write row, probability, band to this CSV."),
    url: str | None = typer.Option(None, help="API base URL (default: the deployed stack on the local cloud)."),
    api_key: str | None = typer.Option(None, envvar="DR_API_KEY", help="API key (needed on AWS) (env DR_API_KEY)."),
) -> None:
    """Ask the deployed prediction API for diabetes risk: one patient as JSON, or a file of patients."""
    from diabetes_risk.predict_client import ApiError, local_api_url, post_predict, predict_file

    if (json_body is None) == (file is None):
        err.print("[red]give exactly one of --json or --file[/red]")
        raise typer.Exit(2)
    if url is None:
        from diabetes_risk.deploy import DeployError, stack_outputs

        cloud = _settings(None, None)
        if not runtime.is_up(cloud):
            err.print(
                "[red]the local cloud is not running[/red]: start it with `diabetes-risk local up`, or pass --url"
            )
            raise typer.Exit(1)
        try:
            url = local_api_url(cloud.localstack_url, stack_outputs(cloud)["ApiId"])
        except (DeployError, KeyError) as exc:
            err.print(f"[red]no deployed prediction API found[/red]: {exc}")
            raise typer.Exit(1) from exc
    try:
        if json_body is not None:
            try:
                body = json.loads(json_body)
            except ValueError as exc:
                err.print(f"[red]--json is not valid JSON[/red]: {exc}")
                raise typer.Exit(2) from exc
            typer.echo(json.dumps(post_predict(url, body, api_key), indent=2))
            return
        result = predict_file(url, file, api_key)
    except ApiError as exc:
        err.print(f"[red]prediction failed:[/red] {exc}")
        raise typer.Exit(1) from exc
    except ValueError as exc:  # DataError: unreadable file, missing columns
        err.print(f"[red]cannot use {file}:[/red] {exc}")
        raise typer.Exit(1) from exc
    table = Table("row", "probability", "risk band")
    for p in result.predictions[:50]:
        table.add_row(str(p["row"]), f"{p['probability']:.3f}", p["risk_band"])
    console.print(table)
    if len(result.predictions) > 50:
        console.print(f"... {len(result.predictions) - 50} more rows")
    bands = {b: sum(p["risk_band"] == b for p in result.predictions) for b in ("low", "moderate", "high")}
    console.print(f"scored {len(result.predictions)} rows with model v{result.model_version}: {bands}")
    if result.rejected:
        err.print(f"[yellow]{len(result.rejected)} problem(s) in rows that were not sent:[/yellow]")
        for r in result.rejected[:20]:
            err.print(f"  row {r['row']} {r['field']}: {r['message']}")
    if out:
        import csv

        with open(out, "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=["row", "probability", "risk_band"])
            writer.writeheader()
            writer.writerows(result.predictions)
        console.print(f"wrote {out}")


@app.command("score")
def score(
    file: Path = typer.Argument(..., help="CSV or Parquet of patients (canonical, MASS or Kaggle columns)."),
    wait: bool = typer.Option(False, "--wait", help="Follow the scoring and print the manifest's summary."),
    key: str | None = typer.Option(None, help="Key under inbox/ (default: the file's name)."),
    bucket: str | None = typer.Option(None, help="Batch bucket (default: the deployed stack's, on the local cloud)."),
    timeout: float = typer.Option(900, min=1, help="With --wait: seconds to wait for the result."),
    as_json: bool = typer.Option(False, "--json", help="With --wait: print the whole manifest as JSON."),
    dead_letter_queue: str | None = typer.Option(
        None, help="With --bucket: the batch function's dead-letter queue URL (stack output BatchDeadLetterQueueUrl)."
    ),
) -> None:
    """Drop a file into the batch inbox; with --wait, follow it until its manifest (or failure) appears, or until
    the function gives up on it (its dead-letter queue)."""
    from rich.progress import BarColumn, DownloadColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from diabetes_risk.batch_client import WaitTimeout, dead_letter, upload, wait_for_result

    if not file.is_file():
        err.print(f"[red]{file}: no such file[/red]" if not file.exists() else f"[red]{file}: not a file[/red]")
        raise typer.Exit(2)
    if bucket is None:
        from localcloud.smoke import clients

        cloud = _settings(None, None)
        _require_up(cloud)
        outputs = _deployed_outputs(cloud)
        bucket = outputs["BatchBucket"]
        s3, sqs = clients(cloud, "s3", "sqs")
        queue = outputs.get("BatchDeadLetterQueueUrl")
    else:
        import boto3

        s3, sqs, queue = boto3.client("s3"), boto3.client("sqs"), dead_letter_queue
    size = file.stat().st_size
    with Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(), console=err, transient=True) as bar:
        task = bar.add_task(f"uploading {file.name}", total=size)
        try:
            dropped = upload(s3, bucket, file, key, progress=lambda n: bar.advance(task, n))
        except Exception as exc:  # no bucket, no permission, endpoint down
            err.print(f"[red]upload to s3://{bucket} failed:[/red] {exc}")
            raise typer.Exit(1) from exc
    console.print(f"dropped s3://{bucket}/{dropped.key} → results in s3://{bucket}/{dropped.prefix}")
    if not wait:
        return
    with Progress(
        SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=err, transient=True
    ) as bar:
        task = bar.add_task("waiting for the batch-score function", total=None)

        def show(state: str, _seconds: int) -> None:
            bar.update(task, description=state)

        def given_up() -> dict | None:
            return dead_letter(sqs, queue, bucket, dropped.key, dropped.version_id) if queue else None

        try:
            kind, record = wait_for_result(s3, dropped, timeout, show, dead_letters=given_up)
        except WaitTimeout as exc:
            err.print(f"[red]{exc}[/red]")
            raise typer.Exit(1) from exc
    if kind == "dead_letter":
        error = record.get("error") or {}
        why = (record.get("failed") or {}).get("reason") or f"{error.get('errorType')}: {error.get('errorMessage')}"
        err.print(
            f"[red]{file.name} was not scored: the batch-score function gave up after {record.get('attempts')} "
            f"attempts ({record.get('condition')})[/red]: {why}. The event is in the dead-letter queue {queue}."
        )
        raise typer.Exit(1)
    if kind == "failed":
        where = f" (moved to s3://{bucket}/{record['quarantined_to']})" if record.get("quarantined_to") else ""
        err.print(f"[red]{file.name} was not scored ({record['kind']}):[/red] {record['reason']}{where}")
        raise typer.Exit(1)
    if as_json:
        typer.echo(json.dumps(record, indent=2))
        return
    _print_manifest(record, bucket)


def _print_manifest(m: dict, bucket: str) -> None:
    console.print(
        f"[green]scored[/green] {m['rows_scored']:,} of {m['rows_read']:,} rows with model v{m['model']['version']} "
        f"({m['model']['family']}); {m['rows_rejected']:,} rejected; {m['timings_s'].get('total', 0):.2f} s"
    )
    console.print("risk bands: " + ", ".join(f"{k} {v:,}" for k, v in m["risk_bands"].items()))
    if m["errors_by_field"]:
        console.print("rejected by field: " + ", ".join(f"{k} {v:,}" for k, v in m["errors_by_field"].items()))
    drift = m["drift"]
    if drift["status"] in ("too_few_rows", "no_profile"):
        console.print(f"drift: {drift['status']} (at least {drift['min_rows']} scored rows are needed to judge)")
    else:
        _print_drift(drift)
    if m.get("training_execution_arn"):
        console.print(f"drift started training: {m['training_execution_arn']}")
    for name, key in m["output_keys"].items():
        console.print(f"  {name}: s3://{bucket}/{key}")
    console.print(f"  manifest.json: s3://{bucket}/outbox/{m['name']}/manifest.json")


def _print_drift(drift: dict) -> None:
    table = Table("feature", "PSI", "KS", "missing", "drifted", title=f"drift: {drift['status']}")
    for name, d in drift["features"].items():
        table.add_row(
            name,
            f"{d['psi']:.3f}",
            f"{d['ks']:.3f}",
            f"{d['batch_missing_rate']:.1%}",
            "[red]yes[/red]" if d["drifted"] else "",
        )
    console.print(table)


@app.command("runs")
def runs(limit: int = typer.Option(10, min=1, max=100, help="How many recent executions.")) -> None:
    """Recent training executions of the deployed state machine and their outcome."""
    from diabetes_risk.runs import failure_record, recent
    from localcloud.smoke import clients

    cloud = _settings(None, None)
    _require_up(cloud)
    outputs = _deployed_outputs(cloud)
    sfn, s3 = clients(cloud, "stepfunctions", "s3")
    table = Table("execution", "status", "started", "seconds", "failed step: cause")
    for run in recent(sfn, outputs["TrainingStateMachineArn"], limit):
        why = ""
        if run["status"] == "FAILED":
            record = failure_record(s3, outputs["ArtifactsBucket"], run["name"]) or {}
            why = f"{record.get('failed_step', '?')}: {record.get('message', '')[:80]}"
        colour = {"SUCCEEDED": "green", "FAILED": "red", "RUNNING": "yellow"}.get(run["status"], "white")
        table.add_row(
            run["name"],
            f"[{colour}]{run['status']}[/{colour}]",
            f"{run['started']:%Y-%m-%d %H:%M:%S}",
            f"{run['seconds']:.0f}" if run["seconds"] is not None else "-",
            why,
        )
    console.print(table)
    queue = outputs.get("StartDeadLetterQueueUrl")
    if queue:
        from diabetes_risk.batch_client import dead_letters

        (sqs,) = clients(cloud, "sqs")
        for gave_up in dead_letters(sqs, queue):
            error = gave_up.get("error") or {}
            err.print(
                f"[red]new data did not start a run[/red]: s3://{gave_up['bucket']}/{gave_up['key']} "
                f"({gave_up['condition']} after {gave_up['attempts']} attempts): "
                f"{error.get('errorType')}: {error.get('errorMessage')}"
            )


MODEL_LABEL = "diabetes-risk"

register_monitoring_commands(app)


if __name__ == "__main__":
    app()
