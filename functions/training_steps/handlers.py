"""Thin handlers: parse the state, inject a test fault if asked, call one training step, return small JSON.

Transient AWS errors (throttling, S3 5xx) are re-raised as `TransientError`, which the state machine
retries with backoff; everything else (bad data, a failed parity check) goes to the failure path.
"""

from __future__ import annotations

import functools
import math
import os
import re
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import boto3
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit, single_metric
from aws_lambda_powertools.utilities.data_classes import S3Event
from aws_lambda_powertools.utilities.parser import parse
from botocore.exceptions import ClientError, EndpointConnectionError
from pydantic import BaseModel, ConfigDict, Field, field_validator

from inference_core.feature_layout import ingested_day
from training import steps
from training.families import FAMILIES
from training.preload import preload, step_of
from training.settings import TrainingSettings
from training.store import S3RunStore

logger = Logger(service="diabetes-risk-training")
metrics = Metrics(namespace="DiabetesRisk", service="training")
SETTINGS = TrainingSettings()  # validated at cold start: a bad variable fails here, not mid-run
S3 = boto3.client("s3")
WORK = Path(SETTINGS.work_dir)
# the local target: this function's step's own libraries imported at init, when the local cloud starts the function's
# environment at deploy, not in its first request (see training.preload); on AWS they stay where they are used
PRELOADED = preload(step_of(os.environ.get("_HANDLER"))) if SETTINGS.preload_at_init else ()

TRANSIENT_CODES = {
    "Throttling",
    "ThrottlingException",
    "SlowDown",
    "RequestTimeout",
    "ServiceUnavailable",
    "InternalError",
    "TooManyRequestsException",
    "RequestLimitExceeded",
}


class TransientError(Exception):
    """Worth retrying: the state machine's Retry matches this name."""


class Fault(BaseModel):
    """Test hook from the execution input: make `step` fail once (then succeed on retry) or always."""

    step: str
    mode: Literal["once", "always"] = "once"


class RunConfig(BaseModel):
    model_config = ConfigDict(extra="ignore")
    train_uri: str = "bundled"
    train_version_id: str | None = Field(None, max_length=1024, description="the S3 object version to train on")
    holdout_uri: str = "bundled"
    families: list[str] = Field(default_factory=lambda: list(FAMILIES))
    promotion: Literal["immediate", "shadow", "canary"] | None = Field(
        None, description="What a model that passes the gate becomes; default: the deployment's DR_PROMOTION"
    )
    fault: Fault | None = None

    @field_validator("train_uri", "holdout_uri")
    @classmethod
    def _s3_or_bundled(cls, value: str) -> str:
        """A Lambda has no user files: data comes from S3 (or the bundled set). A local path is a mistake."""
        if value != "bundled" and not value.startswith("s3://"):
            raise ValueError(f"{value[:200]!r}: a training run in Lambda reads s3://bucket/key URIs or 'bundled'")
        return value


class StepEvent(BaseModel):
    model_config = ConfigDict(extra="ignore")
    run_id: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,80}$")
    config: RunConfig = Field(default_factory=RunConfig)
    family: str | None = None


class FailureEvent(StepEvent):
    failed_step: str
    error: dict[str, Any] = Field(default_factory=dict)


def _inject_fault(step: str, event: StepEvent, store: S3RunStore) -> None:
    fault = event.config.fault
    if fault and not SETTINGS.allow_fault_injection:
        raise ValueError(
            "fault injection is off on this deployment: the execution input's `fault` is a test hook, allowed only "
            "when the stack is deployed with -c fault_injection=true (the local target's default)"
        )
    if not fault or fault.step != step:
        return
    marker = f"faults/{step}"
    if fault.mode == "always" or not store.exists(marker):
        store.put_bytes(marker, b"1")
        raise TransientError(f"injected {fault.mode} fault in step {step!r}")


def training_step(name: str):
    """Parse → fault hook → the step; AWS hiccups become TransientError for the state machine's Retry."""

    def wrap(fn):
        @functools.wraps(fn)
        @logger.inject_lambda_context(clear_state=True)
        @metrics.log_metrics
        def handler(event: dict, context: Any) -> dict:
            started = time.perf_counter()
            metrics.add_dimension(name="step", value=name)
            outcome = "failed"
            try:
                result = _run_step(fn, name, event)
                outcome = "succeeded"
                return result
            finally:
                count("Steps", step=name, outcome=outcome)
                metrics.add_metric(name="StepSeconds", unit=MetricUnit.Seconds, value=time.perf_counter() - started)

        return handler

    return wrap


def _run_step(fn, name: str, event: dict) -> dict:
    parsed = parse(event=event, model=FailureEvent if name == "record_failure" else StepEvent)
    logger.append_keys(run_id=parsed.run_id, step=name, family=parsed.family)
    store = S3RunStore(S3, SETTINGS.artifacts_bucket, parsed.run_id)
    _inject_fault(name, parsed, store)
    try:
        result = fn(parsed, store)
    except (ClientError, EndpointConnectionError) as exc:
        code = exc.response.get("Error", {}).get("Code", "") if isinstance(exc, ClientError) else "Connect"
        status = (
            exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) if isinstance(exc, ClientError) else 503
        )
        if code in TRANSIENT_CODES or status >= 500 or code == "Connect":
            raise TransientError(f"{name}: transient AWS error {code or status}: {exc}") from exc
        raise
    logger.info("step done", extra={"result_keys": sorted(result)})
    return result


def count(name: str, **dimensions: str) -> None:
    """One event as its own EMF record with extra dimensions (outcome, decision): one metric name, so a
    dashboard groups by the dimension instead of needing a metric per outcome."""
    with single_metric(
        name=name, unit=MetricUnit.Count, value=1, namespace="DiabetesRisk", default_dimensions={"service": "training"}
    ) as metric:
        for key, value in dimensions.items():
            metric.add_dimension(name=key, value=value)


def _gauge(name: str, value: float | None) -> None:
    if value is not None and math.isfinite(value):
        metrics.add_metric(name=name, unit=MetricUnit.NoUnit, value=value)


def _work(run_id: str) -> Path:
    path = WORK / re.sub(r"[^A-Za-z0-9_.-]", "_", run_id)
    path.mkdir(parents=True, exist_ok=True)
    return path


@training_step("validate")
def validate(event: StepEvent, store: S3RunStore) -> dict:
    config = event.config
    return steps.validate_step(SETTINGS, store, config.train_uri, config.holdout_uri, config.train_version_id)


@training_step("features")
def features(event: StepEvent, store: S3RunStore) -> dict:
    return steps.features_step(SETTINGS, store, _work(event.run_id))


@training_step("train")
def train(event: StepEvent, store: S3RunStore) -> dict:
    if event.family not in FAMILIES:
        raise ValueError(f"unknown model family {event.family!r}; choose from {', '.join(FAMILIES)}")
    return steps.train_step(SETTINGS, store, event.family, n_jobs=SETTINGS.search_workers)


@training_step("evaluate")
def evaluate(event: StepEvent, store: S3RunStore) -> dict:
    return steps.evaluate_step(SETTINGS, store, event.config.families, _work(event.run_id))


@training_step("export")
def export(event: StepEvent, store: S3RunStore) -> dict:
    return steps.export_step(SETTINGS, store)


@training_step("register")
def register(event: StepEvent, store: S3RunStore) -> dict:
    return steps.register_step(SETTINGS, store, event.run_id, _work(event.run_id))


@training_step("promote")
def promote(event: StepEvent, store: S3RunStore) -> dict:
    result = steps.promote_step(SETTINGS, store, s3=S3, promotion=event.config.promotion)
    quality = result.get("quality") or {}
    for name in ("CandidateRocAuc", "CandidateBrier", "ChampionRocAuc", "ChampionBrier"):
        _gauge(name, quality.get(name))
    count("GateDecisions", decision="promoted" if result["promoted"] else "rejected")
    if result.get("published_as"):
        count("Publications", published_as=result["published_as"])
    count("TrainingRuns", outcome="succeeded")
    return result


@training_step("record_failure")
def record_failure(event: FailureEvent, store: S3RunStore) -> dict:
    count("TrainingRuns", outcome="failed")  # first: the alert must not depend on the record's S3 write
    record = steps.record_failure_step(store, event.failed_step, event.error)
    logger.error(
        "training failed",
        extra={"failed_step": record["failed_step"], "error": record["error"], "cause": record["message"]},
    )
    return record


@training_step("materialize")
def _materialize_after_training(event: StepEvent, store: S3RunStore) -> dict:
    return steps.materialize_step(SETTINGS, cloud=True)


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def _materialize_after_batch(event: dict, context: Any) -> dict:
    """S3 → one marker per scored batch that added measurements (features/ingested/<first day>/<batch>.json): the
    patients measured since that day get their latest measurement online."""
    notification = S3Event(event)
    days = []
    for record in notification.records:
        day = ingested_day(record.s3.get_object.key)  # the data class URL-decodes the key
        if day is None:
            raise ValueError(f"not an ingestion marker: {record.s3.get_object.key[:200]!r}")
        days.append(day)
    start = datetime.fromisoformat(min(days)).replace(tzinfo=UTC)
    logger.append_keys(step="materialize", trigger="batch")
    result = steps.materialize_step(SETTINGS, cloud=True, start=start)
    count("FeatureMaterializations", trigger="batch")
    logger.info("online features materialised", extra=result)
    return result


def materialize(event: dict, context: Any) -> dict:
    """Two callers: the state machine after a promotion (its step input), S3 after a scored batch (a notification)."""
    if isinstance(event, dict) and "Records" in event:
        return _materialize_after_batch(event, context)
    return _materialize_after_training(event, context)
