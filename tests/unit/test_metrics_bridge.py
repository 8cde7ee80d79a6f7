"""The EMF → Prometheus bridge: conversion, remote-write encoding, buffering and never failing the caller."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import time

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


def test_a_record_without_a_timestamp_takes_its_log_events_and_a_missing_dimension_is_left_out():
    record = {
        "_aws": {
            "CloudWatchMetrics": [
                {"Namespace": "N", "Dimensions": [["service", "feature"]], "Metrics": [{"Name": "m"}]}
            ]
        }
    }
    (sample,) = emf.convert(message_with([json.dumps(record | {"service": "batch", "m": 1})])).samples
    assert sample.timestamp_ms == 1_000  # the log event's timestamp
    assert dict(sample.labels) == {"service": "batch", "instance": "5f0c8e2a9b7d4c1e8a3f6b2d0e9c7a15"}


def test_gauges_are_one_series_whichever_environment_reports_them():
    record = {
        "_aws": {
            "Timestamp": 5,
            "CloudWatchMetrics": [
                {
                    "Namespace": "N",
                    "Dimensions": [["service"]],
                    "Metrics": [{"Name": "Auc", "Unit": "None"}, {"Name": "Runs", "Unit": "Count"}],
                }
            ],
        },
        "service": "training",
        "Auc": 0.84,
        "Runs": 1,
    }
    a = emf.convert(message_with([json.dumps(record)], stream="2026/11/30/[$LATEST]aaa")).samples
    b = emf.convert(message_with([json.dumps(record)], stream="2026/11/30/[$LATEST]bbb")).samples
    auc = [s.labels for s in a + b if s.name == "n_auc"]
    runs = [s.labels for s in a + b if s.name == "n_runs"]
    assert auc[0] == auc[1] == (("service", "training"),)
    assert runs[0] != runs[1]  # counts keep their environment: no two writers per series


def test_instance_falls_back_to_the_whole_stream_name():
    assert emf.instance_of("2026/11/30/[$LATEST]abc") == "abc"
    assert emf.instance_of("plain-stream") == "plain-stream"
    assert emf.instance_of("ends-with]") == "ends-with]"


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
    """Records what arrives; answers with the queued results (default: 204 No Content). `refuse` makes it
    answer 400 to any request holding a sample with that value, as Prometheus refuses a whole request."""

    def __init__(self, *results: WriteResult, refuse: float | None = None) -> None:
        self.results = list(results)
        self.refuse = refuse
        self.bodies: list = []

    def __call__(self, body: bytes) -> WriteResult:
        request = remote_write.decode(body)
        if self.results:
            result = self.results.pop(0)
        elif self.refuse is not None and any(s.value == self.refuse for ts in request.timeseries for s in ts.samples):
            result = REFUSED
        else:
            result = WriteResult(True, 204, False)
        if result.ok:
            self.bodies.append(request)
        return result

    def values(self, name: str) -> list[float]:
        """Every accepted value of `name`, in the order the requests arrived."""
        return [
            s.value
            for request in self.bodies
            for ts in request.timeseries
            if any(label.name == "__name__" and label.value == name for label in ts.labels)
            for s in ts.samples
        ]


DOWN = WriteResult(False, 0, True, "ConnectionRefusedError")
REFUSED = WriteResult(False, 400, False, "out of order sample")
NOW_MS = 1_796_036_400_000


def bridge_with(prom: FakePrometheus, **config) -> MetricsBridge:
    return MetricsBridge(BridgeConfig(url="http://unused", **config), sender=prom, clock=lambda: NOW_MS / 1000)


def subscription(n_predictions: int = 1, timestamp_ms: int = NOW_MS - 1_000) -> dict:
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


def test_a_batch_is_written_and_the_bridges_health_goes_in_a_request_of_its_own():
    prom = FakePrometheus()
    bridge = bridge_with(prom)
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
    data, _health = prom.bodies
    assert {label.value for ts in data.timeseries for label in ts.labels if label.name == "__name__"} == {
        "diabetes_risk_latency"
    }
    assert prom.values("diabetes_risk_latency") == [0.0, 1.0, 2.0]
    assert prom.values("diabetes_risk_bridge_samples_written") == [3.0]
    assert prom.values("diabetes_risk_bridge_samples_dropped") == [0.0]
    assert prom.values("diabetes_risk_bridge_batch_seconds") == []  # no previous batch yet
    bridge.handle(subscription(1, timestamp_ms=NOW_MS - 500))
    (previous,) = prom.values("diabetes_risk_bridge_batch_seconds")
    assert previous == pytest.approx(summary["seconds"], abs=1e-3)  # the whole previous batch, writes included


def test_prometheus_down_buffers_and_the_next_batch_delivers_both():
    prom = FakePrometheus(DOWN, DOWN)
    bridge = bridge_with(prom)
    first = bridge.handle(subscription(2))
    assert (first["written"], first["buffered"], first["dropped"]) == (0, 2, 0)
    assert "unreachable" in first["error"]
    second = bridge.handle(subscription(1, timestamp_ms=NOW_MS - 500))
    assert (second["written"], second["buffered"], second["error"]) == (3, 0, None)
    assert sorted(prom.values("diabetes_risk_latency")) == [0.0, 0.0, 1.0]


def test_one_refused_sample_costs_only_itself_and_is_counted_once():
    prom = FakePrometheus(refuse=2.0)
    bridge = bridge_with(prom)
    summary = bridge.handle(subscription(5))
    assert (summary["written"], summary["dropped"], summary["buffered"]) == (4, 1, 0)
    assert "HTTP 400" in summary["error"]
    assert sorted(prom.values("diabetes_risk_latency")) == [0.0, 1.0, 3.0, 4.0]
    assert prom.values("diabetes_risk_bridge_samples_dropped") == [1.0]
    bridge.handle(subscription(1, timestamp_ms=NOW_MS - 500))
    assert prom.values("diabetes_risk_bridge_samples_dropped") == [1.0, 0.0]  # reported once, not forever
    assert bridge.totals["dropped"] == 1


def test_the_buffer_is_bounded_after_a_failed_write_and_the_oldest_samples_go_first():
    prom = FakePrometheus(DOWN, DOWN, DOWN, DOWN)
    bridge = bridge_with(prom, max_buffered=5)
    bridge.handle(subscription(4, timestamp_ms=NOW_MS - 2_000))
    summary = bridge.handle(subscription(4, timestamp_ms=NOW_MS - 1_000))
    assert (summary["buffered"], summary["dropped"]) == (5, 3)
    bridge.handle(logs_subscription_event(message_with(["no metrics here"])))
    assert prom.values("diabetes_risk_latency") == [3.0, 0.0, 1.0, 2.0, 3.0]  # first batch's last, then the second
    assert prom.values("diabetes_risk_bridge_samples_dropped") == [3.0]  # held back while Prometheus was down


def test_a_small_buffer_never_drops_when_prometheus_is_up():
    prom = FakePrometheus()
    bridge = bridge_with(prom, max_buffered=2)
    assert bridge.handle(subscription(5))["written"] == 5
    with pytest.raises(ValueError):
        bridge_with(prom, max_buffered=0)


def test_samples_older_than_the_out_of_order_window_are_dropped_before_sending():
    prom = FakePrometheus()
    bridge = bridge_with(prom)
    summary = bridge.handle(subscription(2, timestamp_ms=NOW_MS - 2 * 3600 * 1000))
    assert (summary["written"], summary["dropped"]) == (0, 2)
    assert prom.values("diabetes_risk_latency") == [] and bridge.totals["too_old"] == 2


def test_large_backlogs_go_out_in_chunks():
    prom = FakePrometheus()
    bridge = bridge_with(prom, max_samples_per_write=2)
    assert bridge.handle(subscription(5))["written"] == 5
    assert len(prom.bodies) == 3 + 1  # three data chunks and the health report


@pytest.mark.parametrize(
    "event",
    [{}, {"awslogs": {"data": "not base64!"}}, None, logs_subscription_event(message=["a", "list"])],  # type: ignore[arg-type]
)
def test_a_bad_payload_never_raises(event):
    prom = FakePrometheus()
    bridge = bridge_with(prom)
    summary = bridge.handle(event)
    assert summary["samples"] == 0 and summary["error"]
    assert bridge.totals["payload_errors"] == 1


def test_a_sample_the_encoder_refuses_is_isolated_like_a_refused_one():
    prom = FakePrometheus()
    bridge = bridge_with(prom)
    good = emf.Sample("m", (("instance", "a"),), 1.0, NOW_MS - 10)
    bad = emf.Sample("m", (("instance", "\ud800"),), 2.0, NOW_MS - 5)  # a lone surrogate: protobuf refuses it
    bridge._pending.extend([good, bad, dataclasses.replace(good, timestamp_ms=NOW_MS - 1)])
    written, dropped, error = bridge._flush()
    assert (dropped, "cannot encode" in error) == (1, True) and written == 2


def test_the_writes_stop_before_the_invocation_times_out_and_keep_the_samples():
    prom = FakePrometheus()
    bridge = bridge_with(prom)
    summary = bridge.handle(subscription(3), time_left_s=2.0)  # under the 2.5 s safety margin already
    assert (summary["written"], summary["buffered"], summary["dropped"]) == (0, 3, 0)
    assert "about to time out" in summary["error"]
    assert bridge.handle(subscription(1, timestamp_ms=NOW_MS - 500), time_left_s=60)["written"] == 4


def test_refusals_stop_splitting_at_the_request_budget():
    calls = {"n": 0}

    def refuse_all(body: bytes) -> WriteResult:
        calls["n"] += 1
        return REFUSED

    bridge = MetricsBridge(BridgeConfig(url="http://unused"), sender=refuse_all, clock=lambda: NOW_MS / 1000)
    summary = bridge.handle(subscription(5000))
    assert summary["dropped"] == 5000 and summary["written"] == 0
    assert calls["n"] <= 64 + 1  # the batch's budget, plus the health report


def test_a_non_finite_emf_timestamp_falls_back_to_the_log_event():
    metrics = '"CloudWatchMetrics": [{"Namespace": "N", "Dimensions": [[]], "Metrics": [{"Name": "m"}]}]'
    line = '{"_aws": {"Timestamp": NaN, ' + metrics + '}, "m": 1}'
    (sample,) = emf.convert(message_with([line])).samples
    assert sample.timestamp_ms == 1_000


def test_written_counts_survive_a_failed_health_report():
    prom = FakePrometheus(WriteResult(True, 204, False), DOWN)  # data accepted, health report lost
    bridge = bridge_with(prom)
    bridge.handle(subscription(3))
    bridge.handle(subscription(1, timestamp_ms=NOW_MS - 500))
    assert prom.values("diabetes_risk_bridge_samples_written") == [4.0]


def test_a_sender_that_raises_never_fails_the_caller():
    def broken(body: bytes) -> WriteResult:
        raise RuntimeError("encoding failed")

    bridge = MetricsBridge(BridgeConfig(url="http://unused"), sender=broken, clock=lambda: NOW_MS / 1000)
    summary = bridge.handle(subscription(2))
    assert summary["dropped"] == 2 and "encoding failed" in summary["error"]


@pytest.mark.parametrize(
    ("status", "retry"), [(0, True), (429, True), (500, True), (503, True), (400, False), (404, False)]
)
def test_what_is_worth_retrying(status, retry):
    assert remote_write.retryable(status) is retry


def test_a_signing_failure_keeps_the_samples_for_later(monkeypatch):
    def no_credentials(*args):
        raise RuntimeError("Unable to locate credentials")

    monkeypatch.setattr(remote_write, "sigv4_headers", no_credentials)
    result = remote_write.send("https://aps.example/api/v1/remote_write", b"x", 1.0, sigv4_region="eu-west-1")
    assert (result.ok, result.retryable) == (False, True) and "credentials" in result.detail


def test_send_reports_an_unreachable_server_as_retryable():
    result = remote_write.send("http://127.0.0.1:9/api/v1/write", b"x", timeout_s=0.5)
    assert (result.ok, result.status, result.retryable) == (False, 0, True)


# --- the handler --------------------------------------------------------------------------------------------
def test_handler_settings_fail_at_cold_start_without_a_remote_write_url():
    code = "import sys; sys.path.insert(0, 'functions'); import metrics_bridge.app"
    env = {"PATH": "/usr/bin:/bin", "AWS_DEFAULT_REGION": "us-east-1"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=".")
    assert proc.returncode != 0 and "remote_write_url" in proc.stderr


def test_handler_settings_refuse_an_empty_buffer(monkeypatch):
    from pydantic import ValidationError

    monkeypatch.setenv("DR_REMOTE_WRITE_URL", "http://127.0.0.1:9/api/v1/write")
    import importlib

    app = importlib.import_module("metrics_bridge.app")
    with pytest.raises(ValidationError, match="bridge_max_buffered"):
        app.BridgeSettings(bridge_max_buffered=0)


def test_handler_delivers_and_emits_its_own_emf(monkeypatch, capsys):
    monkeypatch.setenv("DR_REMOTE_WRITE_URL", "http://127.0.0.1:9/api/v1/write")
    import importlib

    app = importlib.import_module("metrics_bridge.app")
    prom = FakePrometheus()
    monkeypatch.setattr(app.BRIDGE, "_send", prom)
    summary = app.handler(subscription(2, timestamp_ms=int(time.time() * 1000) - 1000), None)  # a fresh record
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
