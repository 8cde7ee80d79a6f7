"""CloudWatch Logs subscription payloads → Powertools EMF records → Prometheus samples.

A subscription delivers `{"awslogs": {"data": base64(gzip(json))}}`; each log event's message may be an EMF
record (a JSON object with an `_aws.CloudWatchMetrics` directive). Every metric value becomes one sample per
declared dimension set, at the record's own timestamp. LocalStack ignores subscription filter patterns, so
everything that is not EMF is skipped here."""

from __future__ import annotations

import base64
import gzip
import json
import math
import re
from dataclasses import dataclass, field
from typing import Any

_INVALID_NAME = re.compile(r"[^a-zA-Z0-9_:]")
_INVALID_LABEL = re.compile(r"[^a-zA-Z0-9_]")
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
MAX_LABEL_VALUE = 256


class PayloadError(ValueError):
    """The subscription payload itself could not be decoded (not base64, not gzip, not JSON)."""


@dataclass(frozen=True, slots=True)
class Sample:
    name: str
    labels: tuple[tuple[str, str], ...]  # sorted by label name, as remote write requires
    value: float
    timestamp_ms: int


@dataclass
class Conversion:
    samples: list[Sample] = field(default_factory=list)
    records: int = 0  # EMF records found
    skipped_events: int = 0  # log events that are not EMF (START/END/REPORT lines, plain logs)
    invalid_values: int = 0  # declared metrics whose value is missing or not a finite number


def snake(text: str) -> str:
    """`DiabetesRisk` → `diabetes_risk`, `Predictions_high` → `predictions_high`, `DriftPSI` → `drift_psi`."""
    return _CAMEL.sub("_", text).lower()


def metric_name(namespace: str, name: str) -> str:
    """A valid Prometheus metric name: `<namespace>_<metric>` in snake case, invalid characters as `_`."""
    joined = _INVALID_NAME.sub("_", f"{snake(namespace)}_{snake(name)}" if namespace else snake(name))
    joined = re.sub(r"_+", "_", joined).strip("_") or "unnamed"
    return f"_{joined}" if joined[0].isdigit() else joined


def label_name(name: str) -> str:
    cleaned = re.sub(r"_+", "_", _INVALID_LABEL.sub("_", snake(name))).strip("_") or "label"
    return f"_{cleaned}" if cleaned[0].isdigit() else cleaned


def decode_subscription(event: dict[str, Any]) -> dict[str, Any]:
    """The decoded CloudWatch Logs subscription message (logGroup, logStream, logEvents, ...)."""
    try:
        raw = base64.b64decode(event["awslogs"]["data"], validate=True)
        return json.loads(gzip.decompress(raw))
    except (KeyError, TypeError, ValueError, OSError, EOFError) as exc:
        raise PayloadError(f"not a CloudWatch Logs subscription payload: {type(exc).__name__}: {exc}") from exc


def parse_emf(message: str) -> dict[str, Any] | None:
    """The EMF record in a log message, or None. Lambda may prefix lines; the record is the JSON object."""
    start = message.find("{")
    if start < 0 or '"_aws"' not in message:
        return None
    try:
        record = json.loads(message[start:])
    except ValueError:
        return None
    if not isinstance(record, dict):
        return None
    directive = record.get("_aws")
    if not isinstance(directive, dict) or not isinstance(directive.get("CloudWatchMetrics"), list):
        return None
    return record


def _values(raw: Any) -> list[float] | None:
    items = raw if isinstance(raw, list) else [raw]
    out = []
    for item in items:
        if isinstance(item, bool) or not isinstance(item, int | float) or not math.isfinite(item):
            return None
        out.append(float(item))
    return out or None


def record_samples(record: dict[str, Any], extra_labels: dict[str, str], fallback_ms: int, result: Conversion) -> None:
    """Samples of one EMF record. An array of values (Powertools aggregates repeated metrics in one record)
    becomes samples 1 ms apart, so each stays a sample of its own in Prometheus. A metric whose unit is `None`
    is a gauge (a version, a score, a drift statistic): it is written without the `instance` label, so its
    latest value is one series whichever execution environment reported it."""
    directive = record["_aws"]
    ts = directive.get("Timestamp")
    valid = isinstance(ts, int | float) and not isinstance(ts, bool) and math.isfinite(ts) and 0 < ts < 2**62
    timestamp = int(ts) if valid else fallback_ms
    for block in directive["CloudWatchMetrics"]:
        if not isinstance(block, dict):
            continue
        namespace = str(block.get("Namespace") or "")
        dimension_sets = block.get("Dimensions") or [[]]
        for metric in block.get("Metrics") or []:
            name = metric.get("Name") if isinstance(metric, dict) else None
            if not isinstance(name, str) or not name:
                result.invalid_values += 1
                continue
            values = _values(record.get(name))
            if values is None:
                result.invalid_values += 1
                continue
            prom_name = metric_name(namespace, name)
            gauge = metric.get("Unit") == "None"
            for dimensions in dimension_sets:
                labels = {k: v for k, v in extra_labels.items() if not (gauge and k == "instance")}
                for dim in dimensions if isinstance(dimensions, list) else []:
                    value = record.get(dim)
                    if isinstance(dim, str) and value is not None:
                        labels[label_name(dim)] = str(value)[:MAX_LABEL_VALUE]
                key = tuple(sorted(labels.items()))
                for i, value in enumerate(values):
                    result.samples.append(Sample(prom_name, key, value, timestamp + i))


def instance_of(log_stream: str) -> str:
    """The execution environment's id from a Lambda log stream (`2026/11/30/[$LATEST]abc…` → `abc…`): one
    writer per counter series, so two environments never write the same count at the same millisecond."""
    return log_stream.rsplit("]", 1)[-1][:MAX_LABEL_VALUE] or log_stream[:MAX_LABEL_VALUE]


def convert(message: dict[str, Any]) -> Conversion:
    """All samples of one decoded subscription message."""
    result = Conversion()
    if message.get("messageType") != "DATA_MESSAGE":  # CONTROL_MESSAGE: the delivery check AWS sends first
        return result
    base = {"instance": instance_of(str(message.get("logStream", "")))}
    for event in message.get("logEvents") or []:
        text = event.get("message") if isinstance(event, dict) else None
        record = parse_emf(text) if isinstance(text, str) else None
        if record is None:
            result.skipped_events += 1
            continue
        result.records += 1
        fallback = event.get("timestamp")
        record_samples(record, base, int(fallback) if isinstance(fallback, int | float) else 0, result)
    return result
