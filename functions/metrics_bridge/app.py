"""CloudWatch Logs subscription → Prometheus remote write (see observability.bridge).

Thin: settings at cold start, one bridge per execution environment, `handle` per batch. It never raises: on
LocalStack the subscription runs inside the producer's PutLogEvents, and on AWS a raise would only re-deliver a
batch the bridge has already buffered. Its own EMF metrics go to its own log group, which is never subscribed."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from observability.bridge import BridgeConfig, MetricsBridge


class BridgeSettings(BaseSettings):
    """Validated at cold start: a missing remote-write URL fails the container, not a batch."""

    model_config = SettingsConfigDict(env_prefix="DR_", extra="ignore")
    remote_write_url: str = Field(pattern=r"^https?://")
    remote_write_timeout_s: float = Field(2.0, gt=0, le=30)
    remote_write_sigv4_region: str | None = Field(None, description="set on AWS (Amazon Managed Prometheus)")
    bridge_max_buffered: int = Field(100_000, ge=1)
    bridge_max_sample_age_s: float = Field(3300.0, gt=0, description="oldest sample still sent (AWS: AMP's window)")


SETTINGS = BridgeSettings()
logger = Logger(service="diabetes-risk-metrics-bridge")
metrics = Metrics(namespace="DiabetesRisk", service="metrics_bridge")
BRIDGE = MetricsBridge(
    BridgeConfig(
        url=SETTINGS.remote_write_url,
        timeout_s=SETTINGS.remote_write_timeout_s,
        sigv4_region=SETTINGS.remote_write_sigv4_region or None,
        max_buffered=SETTINGS.bridge_max_buffered,
        max_age_s=SETTINGS.bridge_max_sample_age_s,
    )
)


@metrics.log_metrics
def handler(event: dict, context: Any) -> dict:
    time_left = context.get_remaining_time_in_millis() / 1000 if context is not None else None
    summary = BRIDGE.handle(event, time_left_s=time_left)
    metrics.add_metric(name="BridgeSamplesWritten", unit=MetricUnit.Count, value=summary["written"])
    metrics.add_metric(name="BridgeSamplesDropped", unit=MetricUnit.Count, value=summary["dropped"])
    metrics.add_metric(name="BridgeSamplesBuffered", unit=MetricUnit.Count, value=summary["buffered"])
    metrics.add_metric(name="BridgeBatchSeconds", unit=MetricUnit.Seconds, value=summary["seconds"])
    if summary["error"]:
        logger.warning("metrics bridge could not deliver everything", extra=summary)
    return summary
