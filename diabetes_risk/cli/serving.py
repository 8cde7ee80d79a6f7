"""`diabetes-risk predict` and `score`: the prediction API and batch scoring."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.table import Table

from diabetes_risk.cli.common import console, deployed_outputs, err, print_table, require_up, settings_from
from localcloud import runtime


def register(app: typer.Typer) -> None:
    app.command("predict")(predict)
    app.command("score")(score)


def predict(
    json_body: str | None = typer.Option(None, "--json", help='One patient (or {"patients": [...]}) as JSON.'),
    file: str | None = typer.Option(None, "--file", help="CSV/Parquet of patients (canonical, MASS or Kaggle)."),
    out: str | None = typer.Option(None, "--out", help="With --file: write row, probability, band to this CSV."),
    url: str | None = typer.Option(None, help="API base URL (default: the deployed stack on the local cloud)."),
    api_key: str | None = typer.Option(
        None, envvar="DR_API_KEY", help="API key: the usage plan's, on AWS (env DR_API_KEY). Not authentication."
    ),
    token: str | None = typer.Option(
        None,
        envvar="DR_API_TOKEN",
        help="Bearer access token (env DR_API_TOKEN). Default on the local cloud: one minted for --client.",
    ),
    client: str = typer.Option("clinic-demo", "--client", help="Client system the local token is minted for."),
) -> None:
    """Ask the deployed prediction API for diabetes risk: one patient as JSON, or a file of patients."""
    from diabetes_risk.predict_client import ApiError, local_api_url, post_predict, predict_file

    if (json_body is None) == (file is None):
        err.print("[red]give exactly one of --json or --file[/red]")
        raise typer.Exit(2)
    if url is None:
        from diabetes_risk.deploy import DeployError, stack_outputs

        cloud = settings_from(None, None)
        if not runtime.is_up(cloud):
            err.print(
                "[red]the local cloud is not running[/red]: start it with `diabetes-risk local up`, or pass --url"
            )
            raise typer.Exit(1)
        try:
            outputs = stack_outputs(cloud)
            url = local_api_url(cloud.localstack_url, outputs["ApiId"])
        except (DeployError, KeyError) as exc:
            err.print(f"[red]no deployed prediction API found[/red]: {exc}")
            raise typer.Exit(1) from exc
        if token is None:
            from diabetes_risk.access import TokenError, local_token

            try:
                token = local_token(cloud, client, ["predict"], outputs=outputs)
            except TokenError as exc:
                err.print(f"[red]no access token[/red]: {exc}")
                raise typer.Exit(1) from exc
    try:
        if json_body is not None:
            try:
                body = json.loads(json_body)
            except ValueError as exc:
                err.print(f"[red]--json is not valid JSON[/red]: {exc}")
                raise typer.Exit(2) from exc
            typer.echo(json.dumps(post_predict(url, body, api_key, token=token), indent=2))
            return
        result = predict_file(url, file, api_key, token)
    except ApiError as exc:
        err.print(f"[red]prediction failed:[/red] {exc}")
        raise typer.Exit(1) from exc
    except ValueError as exc:  # DataError: unreadable file, missing columns
        err.print(f"[red]cannot use {file}:[/red] {exc}")
        raise typer.Exit(1) from exc
    table = Table("row", "probability", "risk band")
    for p in result.predictions[:50]:
        table.add_row(str(p["row"]), f"{p['probability']:.3f}", p["risk_band"])
    print_table(table)
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

        cloud = settings_from(None, None)
        require_up(cloud)
        outputs = deployed_outputs(cloud)
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
    print_table(table)
