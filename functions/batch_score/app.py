"""S3 ObjectCreated under inbox/ → score the file into outbox/<name>/ (see batch_scoring.service).

Thin: read the records, call `batch_score` per object version under Powertools idempotency (DynamoDB; key:
bucket, key and version id; the in-progress record expires with this invocation's remaining time, so Lambda's
retry after a timeout or an out-of-memory kill proceeds, while a duplicate delivery during a live invocation or
after a finished one does nothing), emit metrics from the outcome. Logs name the object, the counts and the drift
status, never a patient's values."""

from __future__ import annotations

import os
import urllib.parse
from typing import Any

import boto3
from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit, single_metric
from aws_lambda_powertools.utilities.data_classes import S3Event, event_source
from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.idempotency.exceptions import IdempotencyAlreadyInProgressError

from batch_scoring.service import INBOX, BatchOutcome, BatchScorer
from batch_scoring.settings import BatchSettings
from inference_core.model_store import ModelStore

SETTINGS = BatchSettings()
logger = Logger(service="diabetes-risk-batch")
metrics = Metrics(namespace="DiabetesRisk", service="batch")
# Tracing is on where POWERTOOLS_TRACE_DISABLED is not true (AWS); off, X-Ray's SDK is never imported (~250 ms).
tracer = (
    None
    if os.environ.get("POWERTOOLS_TRACE_DISABLED", "").lower() in ("1", "true")
    else Tracer(service="diabetes-risk-batch")
)
# capture_response=False: the response holds patients' results, which have no place in a trace
traced = tracer.capture_lambda_handler(capture_response=False) if tracer else (lambda handler: handler)
SCORER = BatchScorer(
    boto3.client("s3"),
    SETTINGS,
    ModelStore(boto3.client("s3"), SETTINGS.artifacts_bucket, SETTINGS.pointer_key, 30.0, SETTINGS.ort_threads),
    boto3.client("stepfunctions") if SETTINGS.drift_starts_training else None,
)


def _replayed(response: dict, record) -> dict:
    """A stored result handed back for a repeated delivery: it did no work this time."""
    return {**response, "status": "duplicate"}


IDEMPOTENCY = IdempotencyConfig(
    event_key_jmespath="[bucket, key, version]",
    expires_after_seconds=SETTINGS.idempotency_expiry_s,
    raise_on_no_idempotency_key=True,
    response_hook=_replayed,
)


class OwnedInProgress:
    """The DynamoDB client Powertools writes through: an in-progress record carries the Lambda request id that
    wrote it, and the same request may take its own record over. Lambda's retry of an asynchronous event keeps the
    request id, so after an out-of-memory kill (which ends the invocation before the in-progress record expires)
    the retry does the work, while a second S3 delivery (a new request id) is still told "in progress"."""

    def __init__(self, client) -> None:
        self._client = client
        self.request_id: str | None = None

    def __getattr__(self, name: str):
        return getattr(self._client, name)

    def put_item(self, **kwargs):
        item = kwargs.get("Item", {})
        if self.request_id and item.get("status", {}).get("S") == "INPROGRESS" and "ConditionExpression" in kwargs:
            kwargs["Item"] = {**item, "owner": {"S": self.request_id}}
            kwargs["ConditionExpression"] = (
                f"({kwargs['ConditionExpression']}) OR (#status = :inprogress AND #owner = :owner)"
            )
            kwargs["ExpressionAttributeNames"] = {**kwargs.get("ExpressionAttributeNames", {}), "#owner": "owner"}
            kwargs["ExpressionAttributeValues"] = {
                **kwargs.get("ExpressionAttributeValues", {}),
                ":owner": {"S": self.request_id},
            }
        return self._client.put_item(**kwargs)


DYNAMODB = OwnedInProgress(boto3.client("dynamodb"))
PERSISTENCE = DynamoDBPersistenceLayer(table_name=SETTINGS.idempotency_table, key_attr="id", boto3_client=DYNAMODB)


@idempotent_function(data_keyword_argument="obj", persistence_store=PERSISTENCE, config=IDEMPOTENCY)
def batch_score(obj: dict) -> dict:
    """One object version, once. Internal errors raise (no record is kept, Lambda retries); every other outcome
    (scored, quarantined, failed with failed.json) is final and remembered."""
    return SCORER.batch_score(obj["key"], obj["version_id"]).model_dump(mode="json")


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
@traced
@event_source(data_class=S3Event)
def handler(event: S3Event, context: Any) -> dict:
    IDEMPOTENCY.register_lambda_context(context)
    DYNAMODB.request_id = getattr(context, "aws_request_id", None)
    results = []
    for record in event.records:
        key = urllib.parse.unquote_plus(record.s3.get_object.key)
        if not key.startswith(INBOX) or key.endswith("/"):
            logger.info("not in the inbox; ignored", extra={"key": key})
            continue
        version_id = record.s3.get_object.version_id
        version_id = None if version_id in (None, "", "null") else version_id  # "null": not versioned, use the ETag
        obj = {
            "bucket": record.s3.bucket.name,
            "key": key,
            "version_id": version_id,
            "version": version_id or record.s3.get_object.etag or "",  # the idempotency key's last part
        }
        try:
            outcome = BatchOutcome.model_validate(batch_score(obj=obj))
        except IdempotencyAlreadyInProgressError:
            outcome = BatchOutcome(status="in_progress")  # a live invocation has it; its own retries cover it
        if outcome.status == "duplicate":  # a stored result: nothing was done, nothing is counted again
            outcome = BatchOutcome(status="duplicate", name=outcome.name, prefix=outcome.prefix)
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
