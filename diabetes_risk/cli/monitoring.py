"""`diabetes-risk alerts` and `diabetes-risk metrics`: what the local cloud's Prometheus and Alertmanager see."""

from __future__ import annotations

import json

import typer
from rich.table import Table

from diabetes_risk.cli.common import console, err, print_table
from localcloud.settings import LocalCloudSettings
from observability.alert_receiver import read_alerts
from observability.prometheus_api import PrometheusError, alerts, query


def register(app: typer.Typer) -> None:
    app.command("alerts")(alerts_command)
    app.command("metrics")(metrics_command)


def _received(settings: LocalCloudSettings, limit: int) -> list[dict]:
    """The inbox's file, or under docker compose (DR_EXTERNAL) its HTTP view: the file is in a volume there."""
    if not settings.external:
        return read_alerts(settings.alerts_file, limit)
    import requests

    try:
        reply = requests.get(f"{settings.alerts_url}/alerts", timeout=5)
        reply.raise_for_status()
    except requests.RequestException as exc:
        err.print(f"[red]the alert inbox at {settings.alerts_url} did not answer[/red]: {exc}")
        raise typer.Exit(1) from exc
    return reply.json()[-limit:]


def alerts_command(
    limit: int = typer.Option(20, min=1, help="How many received notifications to show."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of tables."),
) -> None:
    """Alerts: firing/pending now in Prometheus, and the notifications Alertmanager delivered to the inbox."""
    settings = LocalCloudSettings()
    try:
        active = alerts(settings.prometheus_url)
    except PrometheusError as exc:
        err.print(f"[red]{exc}[/red] (start the local cloud with `diabetes-risk local up`)")
        raise typer.Exit(1) from exc
    received = _received(settings, limit)
    if as_json:
        typer.echo(json.dumps({"active": active, "received": received}, indent=2))
        return
    table = Table("alert", "state", "since", "summary", title="Active in Prometheus")
    for a in active:
        colour = "red" if a["state"] == "firing" else "yellow"
        table.add_row(
            a["labels"].get("alertname", "?"),
            f"[{colour}]{a['state']}[/{colour}]",
            (a.get("activeAt") or "")[:19],
            a.get("annotations", {}).get("summary", ""),
        )
    print_table(table) if active else console.print("[green]no active alerts[/green]")
    inbox = Table("received", "status", "alert", "summary", title=f"Delivered by Alertmanager ({settings.alerts_file})")
    for r in received:
        inbox.add_row(r["received_at"], r["status"], r["alertname"] or "?", r.get("summary") or "")
    print_table(inbox) if received else console.print("no notifications delivered yet")


def metrics_command(
    expr: str = typer.Argument(..., help="PromQL, e.g. 'sum(sum_over_time(diabetes_risk_predictions_high[5m]))'"),
    as_json: bool = typer.Option(False, "--json", help="Print Prometheus' result as JSON."),
    wait: float = typer.Option(
        0.0,
        "--wait",
        min=0,
        max=600,
        help="Seconds to keep asking while the answer is empty (metrics reach Prometheus a second or two after "
        "the functions log them).",
    ),
) -> None:
    """Run an instant PromQL query against the local cloud's Prometheus."""
    import time

    settings = LocalCloudSettings()
    deadline = time.monotonic() + wait
    try:
        rows = query(settings.prometheus_url, expr)
        while not rows and time.monotonic() < deadline:
            time.sleep(0.25)
            rows = query(settings.prometheus_url, expr)
    except PrometheusError as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from exc
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table("series", "value")
    for row in rows:
        labels = ", ".join(f"{k}={v}" for k, v in sorted(row["metric"].items()))
        table.add_row(labels or "{}", str(row["value"][1]))
    print_table(table) if rows else console.print("[yellow]no data[/yellow] (nothing matched in the lookback window)")
