"""Monitoring on the local cloud, end to end: the functions' EMF metrics reach Prometheus through the log
subscription and the bridge; alerts fire and reach the operator's inbox through Alertmanager; Prometheus
down costs the functions nothing and the bridge delivers what it buffered once Prometheus is back; every
dashboard panel's query returns data."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
import requests

from batch_scoring.service import result_name
from diabetes_risk.batch_client import Upload, wait_for_result
from diabetes_risk.predict_client import local_api_url
from inference_core.contracts import EXAMPLE_PATIENT
from localcloud import runtime
from observability import dashboards
from observability.alert_receiver import read_alerts
from observability.prometheus_api import alerts, query, scalar
from tests.integration.conftest import cli_env, wait_until

pytestmark = pytest.mark.integration
BANDS = ("low", "moderate", "high")
WINDOW = "[3h]"  # longer than the test session: every sample of this session is inside


@pytest.fixture(scope="module")
def api_url(local_cloud, deployed, champion_run) -> str:
    return local_api_url(local_cloud.localstack_url, deployed["ApiId"])


def counts(prom: str) -> dict[str, float]:
    out = {
        band: scalar(prom, f'sum(sum_over_time(diabetes_risk_predictions_{band}{{service="predict"}}{WINDOW}))') or 0.0
        for band in BANDS
    }
    out["requests"] = scalar(prom, f'sum(count_over_time(diabetes_risk_latency{{service="predict"}}{WINDOW}))') or 0.0
    return out


def settled(prom: str, timeout: float = 60) -> dict[str, float]:
    """The counts once nothing is in flight any more (two equal readings 2 s apart)."""
    deadline = time.monotonic() + timeout
    previous = counts(prom)
    while time.monotonic() < deadline:
        time.sleep(2)
        now = counts(prom)
        if now == previous:
            return now
        previous = now
    raise AssertionError(f"the prediction counts did not settle in {timeout:.0f} s (last: {previous})")


def total(prom: str, expr: str) -> float:
    return scalar(prom, expr) or 0.0


def firing(prom: str, name: str) -> list[dict]:
    return [a for a in alerts(prom) if a["labels"]["alertname"] == name and a["state"] == "firing"]


def patients() -> list[dict]:
    """A spread of glucose, BMI and age that lands in every risk band."""
    out = []
    for glucose, bmi, age in ((85, 22.0, 23), (100, 26.0, 30), (120, 30.0, 40), (150, 35.0, 50), (190, 42.0, 62)):
        out.append(EXAMPLE_PATIENT | {"glucose": glucose, "bmi": bmi, "age": age})
    return out


def test_predictions_through_api_gateway_are_counted_per_risk_band_with_latency(api_url, local_cloud, api_headers):
    prom = local_cloud.prometheus_url
    before = settled(prom)
    sent = dict.fromkeys(BANDS, 0)
    for i in range(12):
        response = requests.post(f"{api_url}/predict", json=patients()[i % 5], headers=api_headers, timeout=60)
        assert response.status_code == 200, response.text
        sent[response.json()["predictions"][0]["risk_band"]] += 1
    batch = requests.post(f"{api_url}/predict", json={"patients": patients()}, headers=api_headers, timeout=60)
    for p in batch.json()["predictions"]:
        sent[p["risk_band"]] += 1
    assert all(sent.values()), sent  # the traffic covers every band

    expected = {band: before[band] + sent[band] for band in BANDS} | {"requests": before["requests"] + 13}
    got = wait_until(lambda: (c := counts(prom)) == expected and c, 30, f"counts {expected}")
    assert got == expected
    latency = query(prom, f'diabetes_risk_latency{{service="predict"}}{WINDOW}')
    assert latency and all(float(v) > 0 for row in latency for _, v in row["values"])


def test_a_drifting_batch_fires_the_drift_alert_and_reaches_the_inbox(aws, deployed, champion_run, local_cloud):
    """Other tests of the session may have drifted batches already: the alert's value must count this one."""
    from training.data import load_bundled

    prom = local_cloud.prometheus_url
    drift_count = f'sum(sum_over_time(diabetes_risk_drift_detected{{service="batch"}}{WINDOW}))'
    before = total(prom, drift_count)
    frame = load_bundled("train").frame.drop(columns=["diabetes", "insulin"])
    frame = frame.assign(glucose=(frame["glucose"] + 60).clip(upper=400), bmi=frame["bmi"].fillna(30))
    bucket, key = deployed["BatchBucket"], "inbox/monitoring-drift.csv"
    put = aws.s3.put_object(Bucket=bucket, Key=key, Body=frame.to_csv(index=False).encode())
    upload = Upload(bucket, key, put.get("VersionId"), result_name(key, put.get("VersionId"), put["ETag"]))
    kind, manifest = wait_for_result(aws.s3, upload, 120, poll_s=0.5)
    assert kind == "manifest" and manifest["drift"]["status"] == "drift"

    wait_until(lambda: total(prom, drift_count) == before + 1, 30, "the batch's drift sample")
    wait_until(
        lambda: [a for a in firing(prom, "BatchDriftDetected") if float(a["value"]) >= before + 1],
        60,
        "BatchDriftDetected to fire with this batch counted",
    )
    received = wait_until(
        lambda: [a for a in read_alerts(local_cloud.alerts_file) if a["alertname"] == "BatchDriftDetected"],
        60,
        "Alertmanager to deliver BatchDriftDetected to the inbox",
    )
    assert received[0]["status"] == "firing" and "drifted" in received[0]["summary"]
    psi = query(
        local_cloud.prometheus_url,
        f'last_over_time(diabetes_risk_drift_psi{{service="batch"}}{WINDOW})',  # a gauge: this batch's is the latest
    )
    by_feature = {row["metric"]["feature"]: float(row["value"][1]) for row in psi}
    assert by_feature["glucose"] == pytest.approx(manifest["drift"]["features"]["glucose"]["psi"], rel=1e-6)


def test_an_always_failing_training_run_fires_the_training_alert(local_cloud, deployed, champion_run):
    prom = local_cloud.prometheus_url
    failed_runs = f'sum(sum_over_time(diabetes_risk_training_runs{{service="training",outcome="failed"}}{WINDOW}))'
    before = total(prom, failed_runs)
    proc = subprocess.run(
        [sys.executable, "-m", "diabetes_risk", "train", "--inject-fault", "validate:always", "--json"],
        env=cli_env(local_cloud),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    wait_until(lambda: total(prom, failed_runs) == before + 1, 30, "the failed run's sample")
    wait_until(
        lambda: [a for a in firing(prom, "TrainingRunFailed") if float(a["value"]) >= before + 1],
        60,
        "TrainingRunFailed to fire with this run counted",
    )
    wait_until(
        lambda: [a for a in read_alerts(local_cloud.alerts_file) if a["alertname"] == "TrainingRunFailed"],
        60,
        "Alertmanager to deliver TrainingRunFailed to the inbox",
    )
    failed = total(prom, f'sum(sum_over_time(diabetes_risk_steps{{step="validate",outcome="failed"}}{WINDOW}))')
    assert failed >= 3  # the first attempt and the state machine's two retries


def test_prometheus_down_costs_the_functions_nothing_and_the_bridge_catches_up(
    api_url, local_cloud, deployed, aws, api_headers
):
    prom = local_cloud.prometheus_url
    before = settled(prom)
    bridge = deployed["MetricsBridgeFunctionName"]
    group = aws.lambda_.get_function_configuration(FunctionName=bridge)["LoggingConfig"]["LogGroup"]
    predict_fn = next(
        f["FunctionName"] for f in aws.lambda_.list_functions()["Functions"] if "Predict" in f["FunctionName"]
    )
    predict_group = aws.lambda_.get_function_configuration(FunctionName=predict_fn)["LoggingConfig"]["LogGroup"]
    outage_started = int(time.time() * 1000)

    def logs_of(name: str) -> str:
        events = aws.logs.filter_log_events(logGroupName=name, startTime=outage_started)["events"]
        return " ".join(e["message"] for e in events)

    assert runtime.stop_service(local_cloud, "prometheus")
    try:
        for _ in range(5):
            response = requests.post(f"{api_url}/predict", json=EXAMPLE_PATIENT, headers=api_headers, timeout=60)
            assert response.status_code == 200, response.text
        # the subscription delivers; the bridge finds Prometheus down and keeps the samples
        wait_until(
            lambda: "remote write failed (HTTP unreachable)" in logs_of(group), 30, "the bridge to meet the outage"
        )
    finally:
        runtime.start_service(local_cloud, "prometheus")
    # the functions' own logs are complete and carry no error; the bridge never failed either
    predict_logs = logs_of(predict_group)
    assert predict_logs.count("REPORT RequestId") >= 5 and predict_logs.count('"Latency"') >= 5
    for text in (predict_logs, logs_of(group)):
        assert "Traceback" not in text and "Task timed out" not in text and '"level":"ERROR"' not in text
    # the next batch the bridge handles delivers what it kept (at-least-once): nothing was lost
    requests.post(f"{api_url}/predict", json=EXAMPLE_PATIENT, headers=api_headers, timeout=60)
    expected = before["requests"] + 6
    wait_until(lambda: counts(prom)["requests"] == expected, 30, f"{expected} requests counted")
    assert scalar(prom, f"sum(sum_over_time(diabetes_risk_bridge_samples_dropped{WINDOW}))") == 0


def test_every_dashboard_panel_returns_data(api_url, local_cloud, api_headers):
    # fresh API traffic (the API panels look at the last 5 minutes), including a client error
    for patient in patients():
        assert requests.post(f"{api_url}/predict", json=patient, headers=api_headers, timeout=60).status_code == 200
    assert (
        requests.post(f"{api_url}/predict", json={"glucose": "high"}, headers=api_headers, timeout=60).status_code
        == 422
    )
    prom = local_cloud.prometheus_url
    wait_until(
        lambda: scalar(prom, 'sum(sum_over_time(diabetes_risk_errors{service="predict"}[5m]))'),
        30,
        "the client error to arrive",
    )
    queries = dashboards.queries()
    assert not [expr for _, _, expr in queries if expr.rstrip().endswith("or vector(0)")]  # no panel fakes its data
    empty = [(uid, title, expr) for uid, title, expr in queries if not query(prom, expr)]
    assert empty == []
