"""Champion and challenger on the deployed local cloud: a second training published as challenger, shadow
scoring with per-variant metrics in Prometheus, a 30 % canary over 500 requests, then `models promote` and
`models rollback`, with the pointer, the MLflow aliases and GET /model consistent at every step."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from scipy.stats import binomtest

from diabetes_risk.predict_client import local_api_url
from inference_core.contracts import EXAMPLE_PATIENT
from observability.prometheus_api import query, scalar
from tests.integration.conftest import cli_env, wait_until

pytestmark = pytest.mark.integration
P = '{service="predict"}'


def cli(cloud, *args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "diabetes_risk", *args],
        env=cli_env(cloud),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def patient(i: int) -> dict:
    """500 different patients: each request body is its own canary draw."""
    return {**EXAMPLE_PATIENT, "glucose": 70 + i % 120, "age": 21 + (i // 120) % 60, "bmi": 20 + (i % 13) * 1.5}


@pytest.fixture(scope="module")
def api_url(local_cloud, deployed, champion_run) -> str:
    return local_api_url(local_cloud.localstack_url, deployed["ApiId"])


@pytest.fixture(scope="module")
def mlflow(local_cloud):
    from mlflow import MlflowClient

    return MlflowClient(local_cloud.mlflow_url)


def aliases(mlflow) -> dict[str, str | None]:
    from training.registry import alias_version

    return {a: alias_version(mlflow, a) for a in ("champion", "challenger", "previous")}


def pointer(aws, deployed) -> dict:
    return json.loads(aws.s3.get_object(Bucket=deployed["ArtifactsBucket"], Key="serving/champion.json")["Body"].read())


def model_info(api_url, api_headers) -> dict:
    response = requests.get(f"{api_url}/model", headers=api_headers, timeout=60)
    assert response.status_code == 200, response.text
    return response.json()


def serving_settles(api_url, api_headers, version: str, mode: str) -> dict:
    """GET /model shows the decision (the function re-reads the pointer every 5 s); one more refresh period after
    that, so every warm environment has seen it too."""
    info = wait_until(
        lambda: (
            (i := model_info(api_url, api_headers))["model_version"] == version and i["rollout"]["mode"] == mode and i
        ),
        60,
        f"/model to serve v{version} with rollout {mode}",
        poll=1,
    )
    time.sleep(6)
    return info


@pytest.fixture(scope="module")
def challenger_run(local_cloud, deployed, champion_run, aws) -> dict:
    """A second training, on the first 280 of the 300 training rows (a close but different model: ΔAUC -0.0005,
    p 0.44 in a dry run), published as the challenger in shadow mode."""
    from training.data import load_bundled

    frame = load_bundled("train").frame.head(280)
    buf = io.StringIO()
    frame.to_csv(buf, index=False, quoting=csv.QUOTE_MINIMAL)
    key = "data/challenger/pima-280.csv"
    aws.s3.put_object(Bucket=deployed["DataBucket"], Key=key, Body=buf.getvalue().encode())
    proc = cli(
        local_cloud,
        "train",
        "--json",
        "--promotion",
        "shadow",
        "--families",
        "logistic_regression",
        "--data",
        f"s3://{deployed['DataBucket']}/{key}",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)


def test_second_training_is_published_as_challenger(challenger_run, champion_run, aws, deployed, mlflow):
    champion_version = champion_run["register"]["model_version"]
    version = challenger_run["register"]["model_version"]
    promote = challenger_run["promote"]
    assert promote["promoted"] is True and promote["published_as"] == "challenger", promote
    assert promote["comparison"]["rows"] > 300 and "paired bootstrap" in promote["reason"]
    p = pointer(aws, deployed)
    assert (p["model_version"], p["challenger"]["model_version"]) == (champion_version, version)
    assert p["rollout"] == {"mode": "shadow", "share": 1.0}
    assert aliases(mlflow)["champion"] == champion_version and aliases(mlflow)["challenger"] == version


def test_shadow_answers_with_the_champion_and_reports_per_variant_metrics(
    challenger_run, champion_run, api_url, api_headers, local_cloud
):
    champion_version = champion_run["register"]["model_version"]
    info = serving_settles(api_url, api_headers, champion_version, "shadow")
    assert info["challenger"]["model_version"] == challenger_run["register"]["model_version"]
    prom = local_cloud.prometheus_url
    before = scalar(prom, f"sum(sum_over_time(diabetes_risk_shadow_scored{P}[3h]))") or 0.0
    for i in range(20):
        response = requests.post(f"{api_url}/predict", json=patient(i), headers=api_headers, timeout=60)
        assert response.status_code == 200, response.text
        body = response.json()
        assert (body["variant"], body["model_version"]) == ("champion", champion_version)

    def scored_since() -> bool:
        # the challenger scores a window of buffered requests at once (1 s locally): a later request flushes it
        requests.post(f"{api_url}/predict", json=patient(99), headers=api_headers, timeout=60)
        return (scalar(prom, f"sum(sum_over_time(diabetes_risk_shadow_scored{P}[3h]))") or 0) - before >= 20

    wait_until(scored_since, 90, "20 shadow-scored patients in Prometheus", poll=1.5)
    agreement = scalar(
        prom,
        f"sum(sum_over_time(diabetes_risk_shadow_band_agreement{P}[3h]))"
        f" / sum(sum_over_time(diabetes_risk_shadow_scored{P}[3h]))",
    )
    diff = scalar(
        prom,
        f"sum(sum_over_time(diabetes_risk_shadow_abs_probability_diff_sum{P}[3h]))"
        f" / sum(sum_over_time(diabetes_risk_shadow_scored{P}[3h]))",
    )
    latency = {
        variant: scalar(prom, f"max(quantile_over_time(0.5, diabetes_risk_{variant}_scoring_latency{P}[3h]))")
        for variant in ("challenger", "champion")
    }
    assert 0.5 <= agreement <= 1.0 and 0.0 < diff < 0.2  # a close but different model
    assert latency["challenger"] > 0 and latency["champion"] > 0
    listed = cli(local_cloud, "models", "--json", timeout=120)
    assert listed.returncode == 0, listed.stderr
    live = json.loads(listed.stdout)["live"]
    assert live["shadow scored patients"] >= 20 and 0.5 <= live["shadow risk-band agreement"] <= 1.0


def test_canary_at_30_percent_answers_about_30_percent_by_the_challenger(
    challenger_run, champion_run, api_url, api_headers, local_cloud, unthrottled
):
    set_canary = cli(
        local_cloud, "models", "rollout", "canary", "--share", "0.3", "--reason", "canary test", timeout=120
    )
    assert set_canary.returncode == 0, set_canary.stderr
    champion_version = champion_run["register"]["model_version"]
    challenger_version = challenger_run["register"]["model_version"]
    serving_settles(api_url, api_headers, champion_version, "canary")

    def ask(i: int) -> dict:
        response = requests.post(f"{api_url}/predict", json=patient(i), headers=api_headers, timeout=60)
        assert response.status_code == 200, response.text
        return response.json()

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(ask, range(500)))
    by_challenger = [a for a in answers if a["variant"] == "challenger"]
    assert binomtest(len(by_challenger), 500, 0.3).pvalue > 0.001, len(by_challenger)
    for answer in answers:
        assert answer["model_version"] == (
            challenger_version if answer["variant"] == "challenger" else champion_version
        )
    for i in range(10):  # a retry meets the same model
        assert ask(i)["variant"] == answers[i]["variant"]
    prom = local_cloud.prometheus_url  # and the metrics say which model answered (the bridge may lag under load)
    wait_until(
        lambda: (
            {
                row["metric"].get("variant")
                for row in query(prom, f"sum by (variant) (count_over_time(diabetes_risk_scoring_latency{P}[3h]))")
            }
            >= {"champion", "challenger"}
        ),
        120,
        "scoring latency samples of both variants",
        poll=2,
    )


def test_promote_then_rollback_keep_pointer_aliases_and_model_consistent(
    challenger_run, champion_run, api_url, api_headers, local_cloud, aws, deployed, mlflow
):
    champion_version = champion_run["register"]["model_version"]
    challenger_version = challenger_run["register"]["model_version"]

    promoted = cli(local_cloud, "models", "promote", challenger_version, "--reason", "won the canary", timeout=120)
    assert promoted.returncode == 0, promoted.stderr
    p = pointer(aws, deployed)
    assert (p["model_version"], p["previous"]["model_version"], p["challenger"]) == (
        challenger_version,
        champion_version,
        None,
    )
    assert aliases(mlflow) == {"champion": challenger_version, "challenger": None, "previous": champion_version}
    tags = mlflow.get_model_version("diabetes-risk", challenger_version).tags
    assert tags["decision"] == "promote" and tags["decision_reason"] == "won the canary" and tags["decided_by"]
    info = serving_settles(api_url, api_headers, challenger_version, "none")
    assert info["previous_version"] == champion_version and info["challenger"] is None

    rolled = cli(local_cloud, "models", "rollback", "--reason", "alarm drill", timeout=120)
    assert rolled.returncode == 0, rolled.stderr
    p = pointer(aws, deployed)
    assert (p["model_version"], p["previous"]["model_version"]) == (champion_version, challenger_version)
    assert aliases(mlflow) == {"champion": champion_version, "challenger": None, "previous": challenger_version}
    assert mlflow.get_model_version("diabetes-risk", champion_version).tags["decision"] == "rollback"
    info = serving_settles(api_url, api_headers, champion_version, "none")
    assert info["previous_version"] == challenger_version
    response = requests.post(f"{api_url}/predict", json=patient(1), headers=api_headers, timeout=60)
    assert (response.json()["model_version"], response.json()["variant"]) == (champion_version, "champion")

    again = cli(local_cloud, "models", "rollout", "canary", "--reason", "no challenger left", timeout=120)
    assert again.returncode == 1 and "canary needs a challenger" in again.stderr
