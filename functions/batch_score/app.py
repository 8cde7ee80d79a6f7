"""S3 ObjectCreated under inbox/ → score the file into outbox/<name>/ (see batch_scoring.service).

Thin: read the records, call `batch_score` per object, emit metrics from the outcome. Logs name the object,
the counts and the drift status, never a patient's values."""

from __future__ import annotations

import urllib.parse
from typing import Any

import boto3
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit, single_metric
from aws_lambda_powertools.utilities.data_classes import S3Event, event_source

from batch_scoring.service import INBOX, BatchOutcome, BatchScorer
from batch_scoring.settings import BatchSettings
from inference_core.model_store import ModelStore

SETTINGS = BatchSettings()
logger = Logger(service="diabetes-risk-batch")
metrics = Metrics(namespace="DiabetesRisk", service="batch")
SCORER = BatchScorer(
    boto3.client("s3"),
    SETTINGS,
    ModelStore(boto3.client("s3"), SETTINGS.artifacts_bucket, SETTINGS.pointer_key, 30.0, SETTINGS.ort_threads),
    boto3.client("stepfunctions") if SETTINGS.drift_starts_training else None,
)


def emit(outcome: BatchOutcome) -> None:
    batch = {"service": "batch"}
    with single_metric(
        name="Batches", unit=MetricUnit.Count, value=1, namespace="DiabetesRisk", default_dimensions=batch
    ) as metric:
        metric.add_dimension(name="status", value=outcome.status)
    m = outcome.manifest
    if m is None:
        return
    metrics.add_metric(name="RowsScored", unit=MetricUnit.Count, value=m.rows_scored)
    metrics.add_metric(name="RowsRejected", unit=MetricUnit.Count, value=m.rows_rejected)
    metrics.add_metric(name="BatchSeconds", unit=MetricUnit.Seconds, value=m.timings_s.get("total", 0.0))
    metrics.add_metric(name="DriftDetected", unit=MetricUnit.Count, value=int(m.drift.status == "drift"))
    for feature, drift in m.drift.features.items():
        for name, value in (("DriftPSI", drift.psi), ("DriftKS", drift.ks)):
            with single_metric(
                name=name,
                unit=MetricUnit.NoUnit,
                value=value,
                namespace="DiabetesRisk",
                default_dimensions={"service": "batch"},
            ) as metric:
                metric.add_dimension(name="feature", value=feature)


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
@event_source(data_class=S3Event)
def handler(event: S3Event, context: Any) -> dict:
    results = []
    for record in event.records:
        key = urllib.parse.unquote_plus(record.s3.get_object.key)
        if not key.startswith(INBOX) or key.endswith("/"):
            logger.info("not in the inbox; ignored", extra={"key": key})
            continue
        outcome = SCORER.batch_score(key, record.s3.get_object.version_id)
        emit(outcome)
        summary = {"key": key, "status": outcome.status, "result": outcome.prefix}
        if outcome.manifest:
            m = outcome.manifest
            summary |= {
                "rows_read": m.rows_read,
                "rows_scored": m.rows_scored,
                "rows_rejected": m.rows_rejected,
                "model_version": m.model.version,
                "drift": m.drift.status,
                "drifted_features": m.drift.drifted_features,
                "seconds": m.timings_s.get("total"),
            }
        if outcome.failure:
            summary |= {"failure": outcome.failure.kind, "reason": outcome.failure.reason}
        (
            logger.warning
            if outcome.failure or (outcome.manifest and outcome.manifest.drift.status == "drift")
            else logger.info
        )("batch", extra=summary)
        results.append(summary)
    return {"results": results}
