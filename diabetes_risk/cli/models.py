"""`diabetes-risk models`: the registered versions, what serves (champion, challenger, rollout, previous) and how
the challenger compares on live traffic; `promote`, `rollback` and `rollout` decide, recorded in MLflow."""

from __future__ import annotations

import getpass
import json

import typer
from rich.table import Table

from diabetes_risk.cli.common import console, deployed_outputs, err, print_table, require_up, settings_from

models_app = typer.Typer(
    help="Model versions and the champion/challenger decisions (promote, rollback, rollout).",
    invoke_without_command=True,
    no_args_is_help=False,
)


def register(app: typer.Typer) -> None:
    app.add_typer(models_app, name="models")


def _context():
    """The artifacts bucket, an S3 client and an MLflow client for the deployed local stack."""
    from training.imports import import_mlflow

    import_mlflow()  # Feast's MLflow plugin, loaded the fast way
    from mlflow import MlflowClient

    from localcloud.smoke import clients

    cloud = settings_from(None, None)
    require_up(cloud)
    outputs = deployed_outputs(cloud)
    (s3,) = clients(cloud, "s3")
    return cloud, outputs["ArtifactsBucket"], s3, MlflowClient(cloud.mlflow_url)


@models_app.callback()
def models(
    ctx: typer.Context,
    window: str = typer.Option("1h", help="Live comparison window (a PromQL range, e.g. 15m, 1h, 1d)."),
    as_json: bool = typer.Option(False, "--json", help="Print versions, serving and the live figures as JSON."),
) -> None:
    """List the registered versions with their aliases and gate decisions, what is serving, and the live
    champion/challenger figures from Prometheus (shadow agreement, probability difference, latency per variant)."""
    if ctx.invoked_subcommand is not None:
        return
    import re

    from training.registry import MODEL_NAME

    if not re.fullmatch(r"\d+[smhdw]", window):
        err.print(f"[red]bad --window {window!r}[/red]: a PromQL range such as 15m, 1h or 1d")
        raise typer.Exit(2)
    from mlflow.exceptions import MlflowException

    cloud, bucket, s3, client = _context()
    pointer = _read(s3, bucket)
    failed = False
    try:
        versions = sorted(client.search_model_versions(f"name='{MODEL_NAME}'"), key=lambda v: int(v.version))
    except MlflowException as exc:
        err.print(f"[red]MLflow at {cloud.mlflow_url} could not be asked for the versions:[/red] {exc.message[:300]}")
        versions, failed = [], True
    live = live_comparison(cloud.prometheus_url, window)
    if as_json:
        doc = {
            "versions": [
                {"version": v.version, "aliases": list(v.aliases or []), "tags": dict(v.tags)} for v in versions
            ],
            "serving": json.loads(pointer.model_dump_json()) if pointer else None,
            "live": live,
        }
        typer.echo(json.dumps(doc, indent=2))
        if failed:
            raise typer.Exit(1)
        return
    table = Table("version", "family", "holdout ROC AUC", "aliases", "gate", "last decision", title=MODEL_NAME)
    for v in versions:
        tags = dict(v.tags)
        decision = tags.get("decision", "")
        if decision:
            decision = f"{decision} by {tags.get('decided_by', '?')} {tags.get('decided_at', '')[:19]}"
        table.add_row(
            v.version,
            tags.get("family", ""),
            tags.get("holdout_roc_auc", "")[:6],
            ", ".join(sorted(v.aliases or [])),
            tags.get("gate_decision", ""),
            decision,
        )
    if versions:
        print_table(table)
    elif not failed:
        console.print("[yellow]no registered versions yet[/yellow]: train first")
    if pointer is None:
        console.print("[yellow]nothing is serving yet[/yellow]")
        raise typer.Exit(1 if failed else 0)
    console.print(
        f"serving: champion v{pointer.model_version} ({pointer.family})"
        + (
            f", challenger v{pointer.challenger.model_version} ({pointer.challenger.family})"
            if pointer.challenger
            else ""
        )
        + f", rollout {pointer.rollout.mode}"
        + (f" {pointer.rollout.share:.0%}" if pointer.rollout.mode != "none" else "")
        + (f", previous v{pointer.previous.model_version}" if pointer.previous else "")
    )
    if not failed:
        _mismatch(client, pointer)
    if live is None:
        console.print("[dim]live figures: Prometheus not reachable[/dim]")
    else:
        figures = Table("live (last " + window + ")", "value")
        for key, value in live.items():
            figures.add_row(key, "-" if value is None else f"{value:.4g}")
        print_table(figures)
    if failed:
        raise typer.Exit(1)


def _read(s3, bucket: str):
    """The serving pointer, or a clear exit when S3 cannot be read."""
    from botocore.exceptions import BotoCoreError, ClientError

    from training.registry import read_pointer

    try:
        return read_pointer(s3, bucket)[0]
    except (ClientError, BotoCoreError) as exc:
        err.print(f"[red]the serving pointer s3://{bucket}/serving/champion.json could not be read:[/red] {exc}")
        raise typer.Exit(1) from exc


def live_comparison(prometheus_url: str, window: str) -> dict[str, float | None] | None:
    """The champion/challenger figures the predict function's EMF metrics carry to Prometheus."""
    from observability.prometheus_api import PrometheusError, query, scalar

    p = '{service="predict"}'
    try:
        out: dict[str, float | None] = {
            "shadow scored patients": scalar(
                prometheus_url, f"sum(sum_over_time(diabetes_risk_shadow_scored{p}[{window}]))"
            ),
            "shadow risk-band agreement": scalar(
                prometheus_url,
                f"sum(sum_over_time(diabetes_risk_shadow_band_agreement{p}[{window}]))"
                f" / sum(sum_over_time(diabetes_risk_shadow_scored{p}[{window}]))",
            ),
            "shadow mean |Δprobability|": scalar(
                prometheus_url,
                f"sum(sum_over_time(diabetes_risk_shadow_abs_probability_diff_sum{p}[{window}]))"
                f" / sum(sum_over_time(diabetes_risk_shadow_scored{p}[{window}]))",
            ),
            "shadow p50 scoring ms, challenger": scalar(
                prometheus_url, f"max(quantile_over_time(0.5, diabetes_risk_challenger_scoring_latency{p}[{window}]))"
            ),
            "shadow p50 scoring ms, champion": scalar(
                prometheus_url, f"max(quantile_over_time(0.5, diabetes_risk_champion_scoring_latency{p}[{window}]))"
            ),
        }
        for row in query(
            prometheus_url, f"sum by (variant) (count_over_time(diabetes_risk_scoring_latency{p}[{window}]))"
        ):
            out[f"canary requests answered by {row['metric'].get('variant', '?')}"] = float(row["value"][1])
        for row in query(
            prometheus_url, f"max by (variant) (quantile_over_time(0.5, diabetes_risk_scoring_latency{p}[{window}]))"
        ):
            out[f"canary p50 scoring ms, {row['metric'].get('variant', '?')}"] = float(row["value"][1])
    except PrometheusError:
        return None
    return out


def _mismatch(client, pointer) -> None:
    """MLflow follows the pointer; if a decision was interrupted between the two, say so (the pointer serves)."""
    from training.registry import alias_version

    wanted = {
        "champion": pointer.model_version,
        "challenger": pointer.challenger.model_version if pointer.challenger else None,
        "previous": pointer.previous.model_version if pointer.previous else None,
    }
    for alias, version in wanted.items():
        actual = alias_version(client, alias)
        if actual != version:
            err.print(
                f"[yellow]MLflow alias {alias!r} is {actual or 'unset'} but serving says {version or 'none'}[/yellow]: "
                "the pointer is what serves; the next decision brings MLflow in line"
            )


def _decide(change, decision: str, reason: str, by: str | None, context=None) -> None:
    """Apply a decision to the pointer (the commit point), then MLflow; each failure says what did and did not
    change."""
    from botocore.exceptions import BotoCoreError, ClientError
    from mlflow.exceptions import MlflowException

    from training.registry import DecisionError, PointerChanged, apply_decision, sync_aliases

    cloud, bucket, s3, client = context or _context()
    try:
        before, after = apply_decision(client, s3, bucket, change, decision=decision, reason=reason, by=by, sync=False)
    except DecisionError as exc:
        err.print(f"[red]cannot {decision}:[/red] {exc}")
        raise typer.Exit(1) from exc
    except PointerChanged as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from exc
    except (ClientError, BotoCoreError) as exc:
        err.print(
            f"[red]{decision} not applied: the serving pointer in s3://{bucket} could not be read or written:[/red] "
            f"{exc}"
        )
        raise typer.Exit(1) from exc
    was = f"v{before.model_version}" if before else "nothing"
    console.print(
        f"[green]{decision}[/green]: champion {was} → v{after.model_version}"
        + (f", challenger v{after.challenger.model_version}" if after.challenger else ", no challenger")
        + f", rollout {after.rollout.mode}"
        + (f" {after.rollout.share:.0%}" if after.rollout.mode != "none" else "")
        + (f", previous v{after.previous.model_version}" if after.previous else "")
    )
    try:
        sync_aliases(client, after, decision=decision, reason=reason, by=by)
    except MlflowException as exc:
        err.print(
            f"[yellow]serving changed, but MLflow at {cloud.mlflow_url} was not updated[/yellow] "
            f"({exc.message[:200]}): its aliases and tags lag behind until the next decision; "
            "`diabetes-risk models` shows the difference"
        )
        raise typer.Exit(1) from exc
    console.print("[dim]the prediction function picks it up at its next pointer check (DR_MODEL_REFRESH_S)[/dim]")


Reason = typer.Option(..., "--reason", help="Why: recorded on the version in MLflow (tag decision_reason).")
By = typer.Option(None, "--by", help="Who decided (default: the current user).")


@models_app.command("promote")
def promote(
    version: str = typer.Argument(..., help="The version to serve: the challenger, or any version published before."),
    reason: str = Reason,
    by: str | None = By,
) -> None:
    """Make VERSION the champion; the current champion is kept as `previous` for `rollback`."""
    from training.registry import promote_version, published_ref

    if not version.isdigit():
        err.print(f"[red]bad version {version!r}[/red]: a registered version number, e.g. 3")
        raise typer.Exit(2)
    context = _context()
    _, bucket, s3, _ = context
    _decide(
        lambda before: promote_version(before, version, lambda v: published_ref(s3, bucket, v)),
        "promote",
        reason,
        by or getpass.getuser(),
        context,
    )


@models_app.command("rollback")
def rollback(reason: str = Reason, by: str | None = By) -> None:
    """Serve the previous champion again (the one it replaces becomes `previous`, so a rollback can be undone)."""
    from training.registry import rollback as roll_back

    _decide(roll_back, "rollback", reason, by or getpass.getuser())


@models_app.command("rollout")
def rollout(
    mode: str = typer.Argument(..., help="none, shadow (the challenger also scores) or canary (it answers a share)."),
    share: float = typer.Option(
        None, min=0.0, max=1.0, help="Share of requests: default 1.0 for shadow, 0.1 for canary."
    ),
    reason: str = typer.Option("rollout change", "--reason", help="Why (recorded in MLflow)."),
    by: str | None = By,
) -> None:
    """Change how the challenger meets live traffic, without retraining."""
    from training.registry import set_rollout

    if mode not in ("none", "shadow", "canary"):
        err.print(f"[red]bad mode {mode!r}[/red]: choose none, shadow or canary")
        raise typer.Exit(2)
    chosen = share if share is not None else {"shadow": 1.0, "canary": 0.1, "none": 0.0}[mode]
    _decide(lambda before: set_rollout(before, mode, chosen), "rollout", reason, by or getpass.getuser())
