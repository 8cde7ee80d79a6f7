"""Grafana dashboards as code: plain JSON builders (Grafana's dashboard model, schema 39), written to
observability/grafana/dashboards/ and provisioned by docker-compose (or imported into Amazon Managed Grafana).

    python -m observability.dashboards          # rewrite the committed JSON (a test checks it is in sync)

Every query reads the samples the metrics bridge writes (one per invocation, see the rules file's header):
counts are sum_over_time, request rates count_over_time, percentiles quantile_over_time."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field

from .config import DASHBOARDS_DIR

DATASOURCE = {"type": "prometheus", "uid": "prometheus"}


@dataclass
class Panel:
    title: str
    queries: list[tuple[str, str]]  # (PromQL, legend)
    unit: str = "short"
    kind: str = "timeseries"  # or "stat"
    description: str = ""
    width: int = 12


@dataclass
class Dashboard:
    uid: str
    title: str
    description: str
    panels: list[Panel] = field(default_factory=list)

    def model(self) -> dict:
        panels, x, y = [], 0, 0
        for i, p in enumerate(self.panels, start=1):
            height = 4 if p.kind == "stat" else 8
            if x + p.width > 24:
                x, y = 0, y + height
            panels.append(
                {
                    "id": i,
                    "type": p.kind,
                    "title": p.title,
                    "description": p.description,
                    "datasource": DATASOURCE,
                    "gridPos": {"x": x, "y": y, "w": p.width, "h": height},
                    "fieldConfig": {"defaults": {"unit": p.unit}, "overrides": []},
                    "options": {"legend": {"displayMode": "list", "placement": "bottom"}}
                    if p.kind == "timeseries"
                    else {"reduceOptions": {"calcs": ["lastNotNull"]}},
                    "targets": [
                        {"refId": chr(ord("A") + j), "datasource": DATASOURCE, "expr": expr, "legendFormat": legend}
                        for j, (expr, legend) in enumerate(p.queries)
                    ],
                }
            )
            x += p.width
        return {
            "uid": self.uid,
            "title": self.title,
            "description": self.description,
            "tags": ["diabetes-risk"],
            "schemaVersion": 39,
            "editable": True,
            "refresh": "10s",
            "time": {"from": "now-3h", "to": "now"},
            "timezone": "utc",
            "templating": {"list": []},
            "annotations": {"list": []},
            "panels": panels,
        }


P = '{service="predict"}'
B = '{service="batch"}'
T = '{service="training"}'
M = '{service="metrics_bridge"}'


def dashboards() -> list[Dashboard]:
    api = Dashboard(
        "dr-api",
        "Diabetes Risk — prediction API",
        "POST /predict, /health, /model: traffic, risk bands, latency, errors, the model served.",
        [
            Panel("Requests (5 min)", [(f"sum(count_over_time(diabetes_risk_latency{P}[5m]))", "requests")]),
            Panel(
                "Patients scored by risk band (5 min)",
                [
                    (f"sum(sum_over_time(diabetes_risk_predictions_{band}{P}[5m]))", band)
                    for band in ("low", "moderate", "high")
                ],
            ),
            Panel(
                "Handler latency (ms)",
                [
                    (f"max(quantile_over_time(0.5, diabetes_risk_latency{P}[5m]))", "p50"),
                    (f"max(quantile_over_time(0.99, diabetes_risk_latency{P}[5m]))", "p99"),
                ],
                unit="ms",
                description="Per execution environment; the worst one is shown.",
            ),
            Panel(
                "Client errors (4xx, 5 min)",
                [('sum(sum_over_time(diabetes_risk_errors{service="predict"}[5m]))', "4xx/503")],
            ),
            Panel(
                "5xx share",
                [
                    (
                        f"(sum(sum_over_time(diabetes_risk_server_errors{P}[5m])) or vector(0))"
                        f" / clamp_min(sum(count_over_time(diabetes_risk_latency{P}[5m])), 1)",
                        "5xx share",
                    )
                ],
                unit="percentunit",
            ),
            Panel(
                "Champion version served",
                [(f"max(last_over_time(diabetes_risk_champion_version{P}[1h]))", "version")],
                kind="stat",
                width=6,
            ),
            Panel(
                "Cold starts (1 h)",
                [(f"sum(sum_over_time(diabetes_risk_cold_start{P}[1h]))", "cold starts")],
                kind="stat",
                width=6,
            ),
        ],
    )
    batch = Dashboard(
        "dr-batch",
        "Diabetes Risk — batch scoring and drift",
        "Files dropped under inbox/: outcomes, rows, rejected share, duration, drift per feature.",
        [
            Panel(
                "Batches by outcome (1 h)",
                [(f"sum by (status) (sum_over_time(diabetes_risk_batches{B}[1h]))", "{{status}}")],
                description="scored, duplicate (a repeated delivery), in_progress, quarantined, failed",
            ),
            Panel(
                "Rows scored and rejected (1 h)",
                [
                    (f"sum(sum_over_time(diabetes_risk_rows_scored{B}[1h]))", "scored"),
                    (f"sum(sum_over_time(diabetes_risk_rows_rejected{B}[1h]))", "rejected"),
                ],
            ),
            Panel(
                "Rejected row share (1 h)",
                [
                    (
                        f"sum(sum_over_time(diabetes_risk_rows_rejected{B}[1h])) / clamp_min("
                        f"sum(sum_over_time(diabetes_risk_rows_rejected{B}[1h])) + "
                        f"sum(sum_over_time(diabetes_risk_rows_scored{B}[1h])), 1)",
                        "rejected share",
                    )
                ],
                unit="percentunit",
            ),
            Panel(
                "Slowest batch (s, 1 h)",
                [(f"max(max_over_time(diabetes_risk_batch_seconds{B}[1h]))", "seconds")],
                unit="s",
            ),
            Panel(
                "Drift PSI by feature (1 h max)",
                [(f"max by (feature) (max_over_time(diabetes_risk_drift_psi{B}[1h]))", "{{feature}}")],
            ),
            Panel(
                "Drift KS by feature (1 h max)",
                [(f"max by (feature) (max_over_time(diabetes_risk_drift_ks{B}[1h]))", "{{feature}}")],
            ),
            Panel(
                "Drifting batches (1 h)",
                [(f"sum(sum_over_time(diabetes_risk_drift_detected{B}[1h]))", "drifting batches")],
                kind="stat",
                width=6,
            ),
        ],
    )
    training = Dashboard(
        "dr-training",
        "Diabetes Risk — training and model quality",
        "Step Functions training runs: step durations and outcomes, holdout quality of candidate and champion, gate.",
        [
            Panel(
                "Step duration (s, 1 d max)",
                [(f"max by (step) (max_over_time(diabetes_risk_step_seconds{T}[1d]))", "{{step}}")],
                unit="s",
            ),
            Panel(
                "Step outcomes (1 d)",
                [(f"sum by (step, outcome) (sum_over_time(diabetes_risk_steps{T}[1d]))", "{{step}} {{outcome}}")],
                description="A failed attempt that the state machine retried counts as failed.",
            ),
            Panel(
                "Holdout ROC AUC",
                [
                    (f"max(last_over_time(diabetes_risk_candidate_roc_auc{T}[30d]))", "candidate"),
                    (f"max(last_over_time(diabetes_risk_champion_roc_auc{T}[30d]))", "champion"),
                ],
            ),
            Panel(
                "Holdout Brier score (lower is better)",
                [
                    (f"max(last_over_time(diabetes_risk_candidate_brier{T}[30d]))", "candidate"),
                    (f"max(last_over_time(diabetes_risk_champion_brier{T}[30d]))", "champion"),
                ],
            ),
            Panel(
                "Training runs by outcome (30 d)",
                [(f"sum by (outcome) (sum_over_time(diabetes_risk_training_runs{T}[30d]))", "{{outcome}}")],
                kind="stat",
            ),
            Panel(
                "Quality gate decisions (30 d)",
                [(f"sum by (decision) (sum_over_time(diabetes_risk_gate_decisions{T}[30d]))", "{{decision}}")],
                kind="stat",
            ),
        ],
    )
    bridge = Dashboard(
        "dr-bridge",
        "Diabetes Risk — metrics bridge health",
        "The CloudWatch Logs → Prometheus bridge: samples written and dropped, write latency, environments.",
        [
            Panel(
                "Samples written (5 min)",
                [(f"sum(sum_over_time(diabetes_risk_bridge_samples_written{M}[5m]))", "written")],
            ),
            Panel(
                "Samples dropped (10 min)",
                [(f"sum(sum_over_time(diabetes_risk_bridge_samples_dropped{M}[10m]))", "dropped")],
            ),
            Panel(
                "Time per subscription batch, writes included (s)",
                [
                    (f"max(quantile_over_time(0.5, diabetes_risk_bridge_batch_seconds{M}[5m]))", "p50"),
                    (f"max(quantile_over_time(0.99, diabetes_risk_bridge_batch_seconds{M}[5m]))", "p99"),
                ],
                unit="s",
            ),
            Panel(
                "Samples waiting for Prometheus",
                [(f"sum(last_over_time(diabetes_risk_bridge_buffered_samples{M}[5m]))", "buffered")],
                description="Kept in memory while Prometheus is unreachable; sent with the next batch.",
            ),
            Panel(
                "Invalid EMF values (1 h)",
                [(f"sum(sum_over_time(diabetes_risk_bridge_invalid_values{M}[1h]))", "invalid")],
            ),
            Panel(
                "Bridge execution environments (5 min)",
                [(f"count(count_over_time(diabetes_risk_bridge_samples_written{M}[5m]))", "environments")],
                kind="stat",
                width=6,
            ),
        ],
    )
    models = Dashboard(
        "dr-models",
        "Diabetes Risk — champion and challenger",
        "A challenger on live traffic (diabetes-risk models): who answered, shadow agreement with the champion, "
        "probability difference, latency per variant.",
        [
            Panel(
                "Requests answered by variant (5 min)",
                [(f"sum by (variant) (count_over_time(diabetes_risk_scoring_latency{P}[5m]))", "{{variant}}")],
                description="Canary only: each answer's record carries the variant that gave it.",
            ),
            Panel(
                "Scoring latency p50 by variant (ms)",
                [
                    (
                        f"max by (variant) (quantile_over_time(0.5, diabetes_risk_scoring_latency{P}[5m]))",
                        "{{variant}}",
                    ),
                    (
                        f"max(quantile_over_time(0.5, diabetes_risk_challenger_scoring_latency{P}[15m]))",
                        "challenger (shadow, one patient)",
                    ),
                    (
                        f"max(quantile_over_time(0.5, diabetes_risk_champion_scoring_latency{P}[15m]))",
                        "champion (shadow, same patient)",
                    ),
                ],
                unit="ms",
                description="Canary: each answer's model run. Shadow: both models timed on one patient per window.",
            ),
            Panel(
                "Shadow risk-band agreement (15 min)",
                [
                    (
                        f"sum(sum_over_time(diabetes_risk_shadow_band_agreement{P}[15m]))"
                        f" / clamp_min(sum(sum_over_time(diabetes_risk_shadow_scored{P}[15m])), 1)",
                        "agreement",
                    )
                ],
                unit="percentunit",
                description="Share of shadow-scored patients the challenger puts in the champion's risk band.",
            ),
            Panel(
                "Shadow mean |probability difference| (15 min)",
                [
                    (
                        f"sum(sum_over_time(diabetes_risk_shadow_abs_probability_diff_sum{P}[15m]))"
                        f" / clamp_min(sum(sum_over_time(diabetes_risk_shadow_scored{P}[15m])), 1)",
                        "mean |Δp|",
                    )
                ],
            ),
            Panel(
                "Patients by variant and risk band (canary, 15 min)",
                [
                    (
                        f"sum by (variant) (sum_over_time(diabetes_risk_predictions_{band}{P}[15m]))",
                        f"{{{{variant}}}} {band}",
                    )
                    for band in ("low", "moderate", "high")
                ],
            ),
            Panel(
                "Mean probability, champion vs challenger (shadow, 15 min)",
                [
                    (
                        f"sum(sum_over_time(diabetes_risk_shadow_{variant}_probability_sum{P}[15m]))"
                        f" / clamp_min(sum(sum_over_time(diabetes_risk_shadow_scored{P}[15m])), 1)",
                        variant,
                    )
                    for variant in ("champion", "challenger")
                ],
                description="Over the same shadow-scored patients. Deciles: ChallengerProbability_<decile> metrics; "
                "failures: ChallengerUnavailable, ShadowErrors, ShadowRowsDropped (diabetes-risk metrics).",
            ),
            Panel(
                "Models published by training (30 d)",
                [(f"sum by (published_as) (sum_over_time(diabetes_risk_publications{T}[30d]))", "{{published_as}}")],
                kind="stat",
            ),
        ],
    )
    return [api, batch, training, models, bridge]


def queries() -> list[tuple[str, str, str]]:
    """(dashboard uid, panel title, PromQL) of every panel."""
    return [(d.uid, p.title, expr) for d in dashboards() for p in d.panels for expr, _ in p.queries]


def rendered() -> dict[str, str]:
    return {f"{d.uid}.json": json.dumps(d.model(), indent=2) + "\n" for d in dashboards()}


def main() -> None:
    DASHBOARDS_DIR.mkdir(parents=True, exist_ok=True)
    for name, text in rendered().items():
        (DASHBOARDS_DIR / name).write_text(text)
        print(f"wrote {DASHBOARDS_DIR / name}", file=sys.stderr)


if __name__ == "__main__":
    main()
