"""`diabetes-risk features`: a patient's online features (what `POST /predict {"patient_id"}` would use) and
Feast's materialisation of the offline store into the online store, on the deployed local stack."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import typer
from rich.table import Table

from diabetes_risk.cli.common import console, deployed_outputs, err, print_table, require_up, settings_from

features_app = typer.Typer(
    help="The feature store: a patient's online features; materialise the offline store into the online one.",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    app.add_typer(features_app, name="features")


def _outputs():
    cloud = settings_from(None, None)
    require_up(cloud)
    outputs = deployed_outputs(cloud)
    if "OnlineFeaturesTable" not in outputs:
        err.print("[red]the deployed stack has no online feature store[/red]: redeploy with `diabetes-risk deploy`")
        raise typer.Exit(1)
    return cloud, outputs


@features_app.command("get")
def get(
    patient_id: str = typer.Argument(..., help="The patient's id, as in the clinic files (e.g. pima-tr2-0001)."),
    max_age_days: float = typer.Option(365.0, help="Flag the features stale beyond this age (the API's default)."),
    as_json: bool = typer.Option(False, "--json", help="Print the stored features as JSON."),
    wait: float = typer.Option(
        0.0, min=0, max=600, help="Wait up to this many seconds for the patient to appear (a batch just landed)."
    ),
) -> None:
    """Show the latest measurements stored online for PATIENT_ID, when they were taken and whether they are stale.
    Reads the DynamoDB item Feast materialised, as the prediction function does."""
    import time

    from inference_core.online_features import OnlineFeatures, OnlineStoreError
    from localcloud.smoke import clients

    cloud, outputs = _outputs()
    (dynamodb,) = clients(cloud, "dynamodb")
    reader = OnlineFeatures(dynamodb, outputs["OnlineFeaturesTable"])
    deadline = time.monotonic() + wait
    while True:
        try:
            stored = reader.get(patient_id)
        except OnlineStoreError as exc:
            err.print(f"[red]the online feature store cannot be read[/red]: {exc}")
            raise typer.Exit(1) from exc
        if stored is not None or time.monotonic() >= deadline:
            break
        time.sleep(1.0)
    if stored is None:
        err.print(
            f"[red]unknown patient {patient_id!r}[/red]: no online features. Score a file with a patient_id column "
            "(`diabetes-risk score`), or run `diabetes-risk features materialize`"
        )
        raise typer.Exit(1)
    age = (datetime.now(UTC) - stored.measured_at).total_seconds() / 86400
    doc = {
        "patient_id": patient_id,
        "measured_at": stored.measured_at.isoformat(),
        "age_days": round(age, 2),
        "stale": age > max_age_days,
        "features": stored.values,
    }
    if as_json:
        console.print_json(json.dumps(doc))
        return
    table = Table(title=f"{patient_id}: measured {doc['measured_at']} ({doc['age_days']} days ago)")
    table.add_column("feature")
    table.add_column("value", justify="right")
    for name, value in stored.values.items():
        table.add_row(name, "—" if value is None else f"{value:g}")
    print_table(table)
    if doc["stale"]:
        err.print(f"[yellow]stale[/yellow]: older than {max_age_days:g} days; the API flags predictions from it")


@features_app.command("materialize")
def materialize(
    since: str = typer.Option(
        None, help="Only patients measured on or after this date (YYYY-MM-DD); default: every patient."
    ),
) -> None:
    """Load the latest measurement of each patient from the offline store (Parquet in the data bucket) into the
    online store (DynamoDB), with Feast. Training does this after a promotion and each scored batch after it lands;
    this command is for a backfill or a repair."""
    start = None
    if since:
        try:
            start = datetime.fromisoformat(since).replace(tzinfo=UTC)
        except ValueError as exc:
            err.print(f"[red]bad --since {since!r}[/red]: a date such as 2024-03-01")
            raise typer.Exit(2) from exc
    cloud, outputs = _outputs()
    import os

    endpoint = cloud.localstack_url
    os.environ.update(cloud.client_env(), FEAST_S3_ENDPOINT_URL=endpoint)  # Feast's boto3 and s3fs clients
    from inference_core.feature_layout import MEASUREMENTS_PREFIX
    from training.features import FeastConfig
    from training.features import materialize as run

    config = FeastConfig(
        offline_root=f"s3://{outputs['DataBucket']}/{MEASUREMENTS_PREFIX}",
        registry_path=f"s3://{outputs['ArtifactsBucket']}/feast/registry.db",
        online="dynamodb",
        table_template=outputs["OnlineTableTemplate"],
        region=cloud.region,
        dynamodb_endpoint=endpoint,
        s3_endpoint=endpoint,
    )
    with console.status("materialising with Feast (its import alone takes seconds)"):
        try:
            result = run(config, start=start)
        except Exception as exc:
            err.print(f"[red]materialisation failed[/red]: {type(exc).__name__}: {str(exc)[:300]}")
            raise typer.Exit(1) from exc
    console.print(
        f"online store up to date: patients measured {result['start'][:10]} to {result['end'][:19]} "
        f"({result['seconds']} s)"
    )
