"""The EMF → Prometheus bridge: conversion, remote-write encoding, buffering and never failing the caller."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from aws_lambda_powertools import Metrics
from aws_lambda_powertools.metrics import MetricUnit, single_metric

from observability import emf, remote_write
from observability.bridge import BridgeConfig, MetricsBridge
from observability.remote_write import WriteResult
from tests.events.loader import load_event, logs_subscription_event

STREAM = "2026/11/30/[$LATEST]5f0c8e2a9b7d4c1e8a3f6b2d0e9c7a15"


def message_with(lines: list[str], stream: str = STREAM) -> dict:
    return {
        "messageType": "DATA_MESSAGE",
        "logGroup": "g",
        "logStream": stream,
        "logEvents": [{"id": str(i), "timestamp": 1_000 + i, "message": line} for i, line in enumerate(lines)],
    }


def powertools_lines(capsys) -> list[str]:
    """Real EMF output of Powertools: one aggregated record (repeated metric → array) and single metrics with an
    extra dimension, as the batch function writes drift per feature."""
    metrics = Metrics(namespace="DiabetesRisk", service="batch")
    metrics.add_metric(name="RowsScored", unit=MetricUnit.Count, value=990)
    metrics.add_metric(name="Latency", unit=MetricUnit.Milliseconds, value=4.5)
    metrics.add_metric(name="Latency", unit=MetricUnit.Milliseconds, value=6.5)
    metrics.flush_metrics()
    for feature, psi in (("glucose", 0.31), ("bmi", 0.02)):
        with single_metric(
            name="DriftPSI",
            unit=MetricUnit.NoUnit,
            value=psi,
            namespace="DiabetesRisk",
            default_dimensions={"service": "batch"},
        ) as metric:
            metric.add_dimension(name="feature", value=feature)
    return [line for line in capsys.readouterr().out.splitlines() if line.strip()]


def by_name(samples: list[emf.Sample]) -> dict[str, list[emf.Sample]]:
    out: dict[str, list[emf.Sample]] = {}
    for s in samples:
        out.setdefault(s.name, []).append(s)
    return out


def test_powertools_records_become_samples_with_their_dimensions_and_timestamps(capsys):
    lines = powertools_lines(capsys)
    result = emf.convert(message_with(["START RequestId: x", *lines, "REPORT RequestId: x Duration: 1 ms"]))
    assert result.records == 3 and result.skipped_events == 2 and result.invalid_values == 0
    samples = by_name(result.samples)
    assert set(samples) == {"diabetes_risk_rows_scored", "diabetes_risk_latency", "diabetes_risk_drift_psi"}
    (rows,) = samples["diabetes_risk_rows_scored"]
    assert rows.value == 990 and dict(rows.labels) == {
        "service": "batch",
        "instance": "5f0c8e2a9b7d4c1e8a3f6b2d0e9c7a15",
    }
    record_ts = json.loads(lines[0])["_aws"]["Timestamp"]
    assert rows.timestamp_ms == record_ts
    # an array of values stays separate samples, 1 ms apart, so both count in count_over_time
    latency = samples["diabetes_risk_latency"]
    assert [(s.value, s.timestamp_ms) for s in latency] == [(4.5, record_ts), (6.5, record_ts + 1)]
    psi = {dict(s.labels)["feature"]: s.value for s in samples["diabetes_risk_drift_psi"]}
    assert psi == {"glucose": 0.31, "bmi": 0.02}


def test_every_declared_dimension_set_is_a_series_of_its_own():
    record = {
        "_aws": {
            "Timestamp": 5000,
            "CloudWatchMetrics": [
                {"Namespace": "NS", "Dimensions": [["service"], ["service", "feature"], []], "Metrics": [{"Name": "X"}]}
            ],
        },
        "service": "batch",
        "feature": "age",
        "X": 2,
    }
    result = emf.convert(message_with([json.dumps(record)]))
    assert sorted(tuple(k for k, _ in s.labels) for s in result.samples) == [
        ("feature", "instance", "service"),
        ("instance",),
        ("instance", "service"),
    ]
    assert {s.value for s in result.samples} == {2.0}


def test_names_and_labels_are_sanitised():
    assert emf.metric_name("DiabetesRisk", "Probability_0.6_0.7") == "diabetes_risk_probability_0_6_0_7"
    assert emf.metric_name("DiabetesRisk", "DriftPSI") == "diabetes_risk_drift_psi"
    assert emf.metric_name("", "9 lives/€") == "_9_lives"
    assert emf.metric_name("My App", "Errors_model_unavailable") == "my_app_errors_model_unavailable"
    assert emf.label_name("Feature Name") == "feature_name"
    assert emf.label_name("__reserved") == "reserved"
    assert emf.label_name("1st") == "_1st"
    record = {
        "_aws": {
            "Timestamp": 1,
            "CloudWatchMetrics": [{"Namespace": "N", "Dimensions": [["k"]], "Metrics": [{"Name": "m"}]}],
        }
    }
    record |= {"k": "v" * 1000, "m": 1}
    (sample,) = emf.convert(message_with([json.dumps(record)])).samples
    assert len(dict(sample.labels)["k"]) == emf.MAX_LABEL_VALUE


@pytest.mark.parametrize("value", ["12", None, True, float("nan"), [1, "x"], [], {"a": 1}])
def test_values_that_are_not_finite_numbers_are_counted_not_written(value):
    record = {
        "_aws": {
            "Timestamp": 1,
            "CloudWatchMetrics": [{"Namespace": "N", "Dimensions": [[]], "Metrics": [{"Name": "m"}, {"Name": "ok"}]}],
        }
    }
    line = json.dumps(record | {"m": value, "ok": 3}, allow_nan=True)
    result = emf.convert(message_with([line]))
    assert result.invalid_values == 1
    assert [s.name for s in result.samples] == ["n_ok"]


@pytest.mark.parametrize(
    "line",
    [
        "plain text log line",
        '{"level": "INFO", "message": "not EMF"}',
        '{"_aws": "not a directive"}',
        '{"_aws": {"Timestamp": 1}}',
        '[{"_aws": {}}]',
        '{"_aws": {"CloudWatchMetrics": [',
    ],
)
def test_lines_that_are_not_emf_are_skipped(line):
    result = emf.convert(message_with([line]))
    assert (result.records, result.skipped_events, result.samples) == (0, 1, [])


def test_a_lambda_prefix_before_the_record_is_tolerated():
    directive = {
        "Timestamp": 7,
        "CloudWatchMetrics": [{"Namespace": "N", "Dimensions": [[]], "Metrics": [{"Name": "m"}]}],
    }
    record = json.dumps({"_aws": directive, "m": 1})
    line = "2026-11-30T10:00:00.000Z\treq-1\tINFO\t" + record
    (sample,) = emf.convert(message_with([line])).samples
    assert (sample.name, sample.timestamp_ms) == ("n_m", 7)


def test_control_messages_carry_no_samples():
    message = message_with(["x"]) | {"messageType": "CONTROL_MESSAGE"}
    assert emf.convert(message).samples == []


def test_the_sample_event_decodes_and_converts():
    message = emf.decode_subscription(logs_subscription_event())
    assert message == load_event("logs_subscription")
    samples = by_name(emf.convert(message).samples)
    assert samples["diabetes_risk_predictions_high"][0].value == 1.0
    assert dict(samples["diabetes_risk_cold_start"][0].labels)["function_name"] == "DiabetesRisk-ServingPredict"


@pytest.mark.parametrize(
    "event", [{}, {"awslogs": {"data": "***"}}, {"awslogs": {"data": "aGVsbG8="}}, {"awslogs": None}, []]
)
def test_payloads_that_are_not_subscriptions_raise_a_payload_error(event):
    with pytest.raises(emf.PayloadError):
        emf.decode_subscription(event)


def test_remote_write_body_decodes_to_sorted_labels_and_time_ordered_samples():
    samples = [
        emf.Sample("m", (("instance", "a"), ("service", "predict")), 2.0, 20),
        emf.Sample("m", (("instance", "a"), ("service", "predict")), 1.0, 10),
        emf.Sample("other", (("instance", "b"),), 5.0, 15),
    ]
    request = remote_write.decode(remote_write.encode(samples))
    series = {tuple((label.name, label.value) for label in ts.labels): ts for ts in request.timeseries}
    key = (("__name__", "m"), ("instance", "a"), ("service", "predict"))
    assert [(s.timestamp, s.value) for s in series[key].samples] == [(10, 1.0), (20, 2.0)]
    assert (("__name__", "other"), ("instance", "b")) in series
    for ts in request.timeseries:
        names = [label.name for label in ts.labels]
        assert names == sorted(names)


def test_sigv4_signs_for_managed_prometheus(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    url = "https://aps-workspaces.eu-west-1.amazonaws.com/workspaces/ws-1/api/v1/remote_write"
    headers = remote_write.sigv4_headers(url, b"body", "eu-west-1")
    assert "/eu-west-1/aps/aws4_request" in headers["Authorization"]
    assert headers["Content-Encoding"] == "snappy"


# --- the bridge -------------------------------------------------------------------------------------------
class FakePrometheus:
    """Records what arrives; answers with the queued results (default: 204 No Content)."""

    def __init__(self, *results: WriteResult) -> None:
        self.results = list(results)
        self.bodies: list = []

    def __call__(self, body: bytes) -> WriteResult:
        self.bodies.append(remote_write.decode(body))
        return self.results.pop(0) if self.results else WriteResult(True, 204, False)

    def values(self, name: str, index: int = -1) -> list[float]:
        request = self.bodies[index]
        return [
            s.value
            for ts in request.timeseries
            if any(label.name == "__name__" and label.value == name for label in ts.labels)
            for s in ts.samples
        ]


DOWN = WriteResult(False, 0, True, "ConnectionRefusedError")
REFUSED = WriteResult(False, 400, False, "out of order sample")


def subscription(n_predictions: int = 1, timestamp_ms: int = 1_000) -> dict:
    record = {
        "_aws": {
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [
                {"Namespace": "DiabetesRisk", "Dimensions": [["service"]], "Metrics": [{"Name": "Latency"}]}
            ],
        },
        "service": "predict",
        "Latency": [float(i) for i in range(n_predictions)],
    }
    return logs_subscription_event(message_with([json.dumps(record)]))


def test_a_batch_is_written_with_the_bridges_own_health():
    prom = FakePrometheus()
    bridge = MetricsBridge(BridgeConfig(url="http://unused"), sender=prom)
    summary = bridge.handle(subscription(3))
    assert summary | {"seconds": 0} == {
        "records": 1,
        "samples": 3,
        "written": 3,
        "dropped": 0,
        "buffered": 0,
        "error": None,
        "seconds": 0,
    }
    assert prom.values("diabetes_risk_latency") == [0.0, 1.0, 2.0]
    assert prom.values("diabetes_risk_bridge_samples_written") == [3.0]
    assert prom.values("diabetes_risk_bridge_samples_dropped") == [0.0]


def test_prometheus_down_buffers_and_the_next_batch_delivers_both():
    prom = FakePrometheus(DOWN)
    bridge = MetricsBridge(BridgeConfig(url="http://unused"), sender=prom)
    first = bridge.handle(subscription(2))
    assert (first["written"], first["buffered"], first["dropped"]) == (0, 2, 0)
    assert "unreachable" in first["error"]
    second = bridge.handle(subscription(1))
    assert (second["written"], second["buffered"], second["error"]) == (3, 0, None)
    assert sorted(prom.values("diabetes_risk_latency")) == [0.0, 0.0, 1.0]


def test_refused_samples_are_dropped_counted_and_reported_with_the_next_write():
    prom = FakePrometheus(REFUSED)
    bridge = MetricsBridge(BridgeConfig(url="http://unused"), sender=prom)
    refused = bridge.handle(subscription(4))
    assert (refused["dropped"], refused["buffered"]) == (4, 0)
    assert "HTTP 400" in refused["error"]
    bridge.handle(subscription(1))
    assert prom.values("diabetes_risk_bridge_samples_dropped") == [4.0]
    bridge.handle(subscription(1))
    assert prom.values("diabetes_risk_bridge_samples_dropped") == [0.0]  # reported once, not forever
    assert bridge.totals["dropped"] == 4


def test_the_buffer_is_bounded_and_the_oldest_samples_go_first():
    prom = FakePrometheus(DOWN, DOWN)
    bridge = MetricsBridge(BridgeConfig(url="http://unused", max_buffered=5), sender=prom)
    bridge.handle(subscription(4, timestamp_ms=1_000))
    summary = bridge.handle(subscription(4, timestamp_ms=2_000))
    assert (summary["buffered"], summary["dropped"]) == (5, 3)
    bridge.handle(logs_subscription_event(message_with(["no metrics here"])))
    assert prom.values("diabetes_risk_latency") == [3.0, 0.0, 1.0, 2.0, 3.0]  # first batch's last, then the second
    assert prom.values("diabetes_risk_bridge_samples_dropped") == [3.0]


def test_large_backlogs_go_out_in_chunks():
    prom = FakePrometheus()
    bridge = MetricsBridge(BridgeConfig(url="http://unused", max_samples_per_write=2), sender=prom)
    assert bridge.handle(subscription(5))["written"] == 5
    assert len(prom.bodies) == 3


@pytest.mark.parametrize("event", [{}, {"awslogs": {"data": "not base64!"}}, None])
def test_a_bad_payload_never_raises(event):
    prom = FakePrometheus()
    bridge = MetricsBridge(BridgeConfig(url="http://unused"), sender=prom)
    summary = bridge.handle(event)
    assert summary["samples"] == 0 and summary["error"]
    assert bridge.totals["payload_errors"] == 1


def test_a_sender_that_raises_never_fails_the_caller():
    def broken(body: bytes) -> WriteResult:
        raise RuntimeError("signing failed")

    bridge = MetricsBridge(BridgeConfig(url="http://unused"), sender=broken)
    summary = bridge.handle(subscription(2))
    assert summary["dropped"] == 2 and "signing failed" in summary["error"]


def test_send_reports_an_unreachable_server_as_retryable():
    result = remote_write.send("http://127.0.0.1:9/api/v1/write", b"x", timeout_s=0.5)
    assert (result.ok, result.status, result.retryable) == (False, 0, True)


# --- the handler --------------------------------------------------------------------------------------------
def test_handler_settings_fail_at_cold_start_without_a_remote_write_url():
    code = "import sys; sys.path.insert(0, 'functions'); import metrics_bridge.app"
    env = {"PATH": "/usr/bin:/bin", "AWS_DEFAULT_REGION": "us-east-1"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=".")
    assert proc.returncode != 0 and "remote_write_url" in proc.stderr


def test_handler_delivers_and_emits_its_own_emf(monkeypatch, capsys):
    monkeypatch.setenv("DR_REMOTE_WRITE_URL", "http://127.0.0.1:9/api/v1/write")
    import importlib

    app = importlib.import_module("metrics_bridge.app")
    prom = FakePrometheus()
    monkeypatch.setattr(app.BRIDGE, "_send", prom)
    summary = app.handler(subscription(2), None)
    assert summary["written"] == 2
    own = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    assert own and own[-1]["BridgeSamplesWritten"] == [2.0] and own[-1]["service"] == "metrics_bridge"


def test_the_bridge_imports_nothing_heavy():
    heavy = {"numpy", "pandas", "sklearn", "mlflow", "feast", "onnxruntime", "pyarrow", "yaml", "boto3"}
    code = (
        "import sys; import observability.bridge, observability.remote_write, observability.emf; "
        f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({sorted(heavy)!r})))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
