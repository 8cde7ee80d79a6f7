"""`diabetes-risk deploy`, `train` and `runs`: the CDK app and the training state machine."""

from __future__ import annotations

import json
import time

import typer
from pydantic import ValidationError
from rich.table import Table

from diabetes_risk.cli.common import console, deployed_outputs, err, print_table, require_up, settings_from

MODEL_LABEL = "diabetes-risk"


def register(app: typer.Typer) -> None:
    app.command("deploy")(deploy)
    app.command("train")(train)
    app.command("runs")(runs)


def deploy(
    target: str = typer.Option("local", help="'local' (cdklocal into the embedded local cloud) or 'aws' (cdk deploy)."),
    mlflow_uri: str | None = typer.Option(
        None, help="MLflow tracking server for target aws (env MLFLOW_TRACKING_URI); local uses the local one."
    ),
    hotswap: bool = typer.Option(
        False,
        "--hotswap",
        help="Local target: put changed handler code (functions/) straight into the deployed functions, in seconds, "
        "without CloudFormation. Settings, permissions and new resources still need a full deploy.",
    ),
    function: list[str] = typer.Option(
        [], "--function", help="With --hotswap: only functions whose name contains this (repeatable), e.g. Predict."
    ),
    bootstrap: bool = typer.Option(
        False,
        "--bootstrap",
        help="Local target: deploy CDK's whole bootstrap stack first (≈ 40 s) instead of creating just the assets' "
        "staging bucket and version parameter the local deploy uses.",
    ),
    fresh_synth: bool = typer.Option(
        False,
        "--fresh-synth",
        help="Local target: synthesize the app even when no file changed since the last synth (by default that "
        "assembly is deployed again, ≈ 10 s sooner).",
    ),
    synth_only: bool = typer.Option(
        False,
        "--synth-only",
        help="Local target: synthesize the app and keep its assembly for the next deploy, deploying nothing. The "
        "local cloud need not be running (`make demo` runs this beside `local up`).",
    ),
) -> None:
    """Deploy the CDK app (storage, training functions, state machine, schedule, new-data trigger)."""
    import os

    from diabetes_risk.deploy import DeployError, deploy_aws, deploy_local, hotswap_local, synth_local

    if hotswap and fresh_synth:
        err.print("[red]--fresh-synth goes with a full deploy[/red]: --hotswap never synthesizes")
        raise typer.Exit(2)
    if synth_only and (hotswap or bootstrap or function or target != "local"):
        err.print(
            "[red]--synth-only is for the local target and goes alone[/red] (with --fresh-synth at most): "
            "--hotswap, --bootstrap and --function are for a deploy"
        )
        raise typer.Exit(2)
    if synth_only:
        cloud = settings_from(None, None)
        try:
            result = synth_local(cloud, lambda line: None, fresh_synth=fresh_synth)
        except DeployError as exc:
            err.print(f"[red]synth failed:[/red] {exc}")
            raise typer.Exit(1) from exc
        if result["assembly"] == "kept":
            console.print(f"the app is unchanged since its last synth (key {result['key'][:12]}): nothing to do")
        elif result["assembly"] == "synthesized":
            console.print(f"[green]synthesized[/green] the app in {result['synth_s']:.1f} s; the next deploy uses it")
        else:
            console.print(
                f"synthesized the app in {result['synth_s']:.1f} s, but not kept: a file changed, or could not be "
                "read, while CDK read the sources; the next deploy synthesizes again"
            )
        return
    if hotswap:
        if target != "local":
            err.print("[red]--hotswap is for the local target[/red]: on AWS use `npx cdk deploy --hotswap` (CDK's own)")
            raise typer.Exit(2)
        cloud = settings_from(None, None)
        require_up(cloud)
        try:
            done = hotswap_local(cloud, only=tuple(function), on_line=lambda line: console.print(f"  {line}"))
        except DeployError as exc:
            err.print(f"[red]hotswap failed:[/red] {exc}")
            raise typer.Exit(1) from exc
        console.print(
            f"[green]hotswapped[/green] {len(done['updated'])} function(s) in {done['seconds']:.1f} s"
            f" ({len(done['unchanged'])} already up to date)"
        )
        return
    if function:
        err.print("[red]--function goes with --hotswap[/red]")
        raise typer.Exit(2)
    if fresh_synth and target != "local":
        err.print("[red]--fresh-synth is for the local target[/red]: `cdk deploy` synthesizes every time")
        raise typer.Exit(2)
    if bootstrap and target != "local":
        err.print("[red]--bootstrap is for the local target[/red]: on AWS run `npx cdk bootstrap` once per account")
        raise typer.Exit(2)

    if target not in ("local", "aws"):
        err.print(f"[red]unknown target {target!r}[/red]: choose 'local' or 'aws'")
        raise typer.Exit(2)
    cloud = settings_from(None, None)
    try:
        if target == "aws":
            uri = mlflow_uri or os.environ.get("MLFLOW_TRACKING_URI")
            if not uri:
                err.print("[red]target aws needs an MLflow tracking server[/red]: --mlflow-uri or MLFLOW_TRACKING_URI")
                raise typer.Exit(2)
            deploy_aws(uri, console.print, cloud.logs_dir)
            return
        require_up(cloud)
        with console.status("deploying to the local cloud with cdklocal") as spinner:
            result = deploy_local(
                cloud,
                lambda line: spinner.update(f"cdklocal: {line[:100]}"),
                bootstrap=bootstrap,
                fresh_synth=fresh_synth,
            )
    except DeployError as exc:
        err.print(f"[red]deploy failed:[/red] {exc}")
        raise typer.Exit(1) from exc
    times = ", ".join(f"{k.removesuffix('_s')} {v:.1f} s" for k, v in result["timings"].items())
    if result.get("assembly") == "reused":
        times += "; no file changed since the last synth: that assembly deployed (--fresh-synth to synthesize)"
    console.print(f"[green]deployed[/green] DiabetesRisk to the local cloud ({times})")
    outputs = dict(result["outputs"])
    if "ApiId" in outputs:  # the stack's https://<id>.execute-api... URLs do not resolve on the local cloud
        from diabetes_risk.predict_client import local_api_url

        for key, value in outputs.items():
            if value.startswith(f"https://{outputs['ApiId']}.execute-api."):
                stage = value.rstrip("/").rsplit("/", 1)[-1]
                outputs[key] = local_api_url(cloud.localstack_url, outputs["ApiId"], stage) + "/"
    for key, value in outputs.items():
        console.print(f"  {key}: {value}", soft_wrap=True)


def _parse_fault(spec: str | None) -> dict | None:
    if not spec:
        return None
    step, _, mode = spec.partition(":")
    steps = ("validate", "features", "train", "evaluate", "export", "register", "promote")
    if step not in steps or mode not in ("", "once", "always"):
        err.print(f"[red]bad --inject-fault {spec!r}[/red]: use STEP[:once|always] with STEP one of {', '.join(steps)}")
        raise typer.Exit(2)
    return {"step": step, "mode": mode or "once"}


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
    promotion: str | None = typer.Option(
        None,
        help="What a model that passes the gate becomes: 'immediate' (the champion), 'shadow' or 'canary' (a "
        "challenger beside the champion; then `diabetes-risk models promote`). Default: the deployment's setting.",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Train, evaluate, export to ONNX, register in MLflow and promote through the quality gate.

    By default this starts the deployed Step Functions state machine and follows it state by state
    (exit 1 naming the failed state and its cause); --in-process runs the same steps here."""
    from training.families import FAMILIES

    chosen = tuple(f.strip() for f in families.split(",") if f.strip())
    unknown = sorted(set(chosen) - set(FAMILIES))
    if unknown or not chosen:
        given = ", ".join(unknown) or "(none given)"
        err.print(f"[red]unknown model families: {given}[/red]; choose from {', '.join(FAMILIES)}")
        raise typer.Exit(2)
    fault = _parse_fault(inject_fault)
    if promotion not in (None, "immediate", "shadow", "canary"):
        err.print(f"[red]bad --promotion {promotion!r}[/red]: choose immediate, shadow or canary")
        raise typer.Exit(2)
    cloud = settings_from(None, None)
    require_up(cloud)
    if in_process:
        if fault:
            err.print("[red]--inject-fault tests the state machine's Retry/Catch[/red]; it has no effect --in-process")
            raise typer.Exit(2)
        _train_in_process(cloud, data, holdout, chosen, as_json, promotion)
    else:
        _train_state_machine(cloud, data, holdout, chosen, fault, as_json, promotion)


def _train_state_machine(
    cloud,
    data: str,
    holdout: str,
    families: tuple[str, ...],
    fault: dict | None,
    as_json: bool,
    promotion: str | None = None,
) -> None:
    import uuid

    from diabetes_risk.runs import failure_record, follow
    from localcloud.smoke import clients

    outputs = deployed_outputs(cloud)
    sfn, s3 = clients(cloud, "stepfunctions", "s3")
    payload = {"train_uri": data, "holdout_uri": holdout, "families": list(families)}
    if fault:
        payload["fault"] = fault
    if promotion:
        payload["promotion"] = promotion
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
    console.print(f"{_verdict(promote.get('promoted'), promote.get('published_as'))}: {promote.get('reason')}")


def _verdict(passed: bool | None, published_as: str | None) -> str:
    if not passed:
        return "[yellow]not promoted[/yellow]"
    if published_as == "challenger":
        return "[green]published as challenger[/green] (the champion keeps serving)"
    return "[green]promoted to champion[/green]"


def _train_in_process(
    cloud, data: str, holdout: str, chosen: tuple[str, ...], as_json: bool, promotion: str | None = None
) -> None:
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
            result = run_training(
                settings, data, holdout, progress=progress, families=chosen, s3=s3, promotion=promotion
            )
        except (DataError, ExportError) as exc:
            err.print(f"[red]training stopped:[/red] {exc}")
            raise typer.Exit(1) from exc
        if current:
            bar.update(tasks[current[-1]], completed=1)
    if as_json:
        typer.echo(result.model_dump_json(indent=2))
        return
    table = Table("family", "CV ROC AUC ± SE", "holdout ROC AUC", "PR AUC", "Brier", "sensitivity", "specificity")
    for family, m in result.holdout.items():
        mark = " ✓" if family == result.selected_family else ""
        table.add_row(
            family + mark,
            f"{result.cv[family]['cv_auc_mean']:.3f} ± {result.cv[family].get('cv_auc_se', 0.0):.3f}",
            f"{m['roc_auc']:.3f}",
            f"{m['pr_auc']:.3f}",
            f"{m['brier']:.3f}",
            f"{m['sensitivity']:.2f}",
            f"{m['specificity']:.2f}",
        )
    print_table(table)
    console.print(
        f"selected [bold]{result.selected_family}[/bold] → registered {MODEL_LABEL} v{result.model_version}; "
        f"ONNX parity {result.onnx_parity_max_abs_diff:.1e}"
    )
    console.print(f"{_verdict(result.promoted, result.published_as)}: {result.gate_reason}")
    if result.pointer_uri:
        console.print(f"serving pointer: {result.pointer_uri}")
    console.print(f"MLflow run: {cloud.mlflow_url}/#/experiments (run {result.mlflow_run_id})")
    console.print("stage times (s): " + ", ".join(f"{k} {v:.1f}" for k, v in result.timings_s.items()))


def runs(limit: int = typer.Option(10, min=1, max=100, help="How many recent executions.")) -> None:
    """Recent training executions of the deployed state machine and their outcome."""
    from diabetes_risk.runs import failure_record, recent
    from localcloud.smoke import clients

    cloud = settings_from(None, None)
    require_up(cloud)
    outputs = deployed_outputs(cloud)
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
    print_table(table)
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
