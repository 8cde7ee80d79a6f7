"""The prediction API deployed with cdklocal and served by the host executor, over HTTP on 127.0.0.1:
the champion trained by the state machine answers; bad requests are 4xx; the CLI works against it."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import requests

from diabetes_risk.predict_client import local_api_url
from inference_core.contracts import EXAMPLE_PATIENT
from tests.integration.conftest import cli_env

pytestmark = pytest.mark.integration

PATIENT = EXAMPLE_PATIENT


@pytest.fixture(scope="module")
def api_url(local_cloud, deployed, champion_run) -> str:
    url = local_api_url(local_cloud.localstack_url, deployed["ApiId"])
    assert url.startswith("http://127.0.0.1:")
    return url


def test_predict_answers_with_the_champion(api_url, champion_run, aws, deployed, api_headers):
    response = requests.post(f"{api_url}/predict", json=PATIENT, headers=api_headers, timeout=60)
    assert response.status_code == 200, response.text
    body = response.json()
    pointer = json.loads(
        aws.s3.get_object(Bucket=deployed["ArtifactsBucket"], Key="serving/champion.json")["Body"].read()
    )
    assert body["model_version"] == pointer["model_version"]
    (prediction,) = body["predictions"]
    assert 0 < prediction["probability"] < 1 and prediction["risk_band"] in {"low", "moderate", "high"}
    batch = requests.post(
        f"{api_url}/predict", json={"patients": [PATIENT] * 3}, headers=api_headers, timeout=60
    ).json()
    assert [p["probability"] for p in batch["predictions"]] == [prediction["probability"]] * 3


def test_model_and_health_describe_the_lineage(api_url, champion_run, api_headers):
    health = requests.get(f"{api_url}/health", timeout=30)  # open: no token
    assert health.status_code == 200 and health.json()["status"] == "ok"
    model = requests.get(f"{api_url}/model", headers=api_headers, timeout=30).json()
    assert model["lineage"]["mlflow_run_id"]
    assert model["lineage"]["training_data_sha256"] and len(model["features"]) == 7
    spec = requests.get(f"{api_url}/openapi.json", timeout=30).json()
    assert "/predict" in spec["paths"]


@pytest.mark.parametrize(
    ("body", "headers", "status"),
    [
        (json.dumps({**PATIENT, "glucose": "high"}), {"Content-Type": "application/json"}, 422),
        (json.dumps({**PATIENT, "glucose": 900}), {"Content-Type": "application/json"}, 422),
        ("{not json", {"Content-Type": "application/json"}, 400),
        ("", {"Content-Type": "application/json"}, 400),
        (json.dumps(PATIENT), {"Content-Type": "text/plain"}, 415),
    ],
)
def test_bad_requests_are_4xx_json_over_http(api_url, body, headers, status, api_headers):
    response = requests.post(f"{api_url}/predict", data=body, headers={**headers, **api_headers}, timeout=30)
    assert response.status_code == status, response.text
    assert response.json()["error"]


def test_cli_predict_json_and_file(local_cloud, api_url, tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "diabetes_risk", "predict", "--json", json.dumps(PATIENT)],
        env=cli_env(local_cloud),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["predictions"][0]["risk_band"]
    csv_in = tmp_path / "clinic.csv"
    csv_in.write_text(
        "Pregnancies,Glucose,BloodPressure,SkinThickness,Insulin,BMI,DiabetesPedigreeFunction,Age\n"
        "6,148,72,35,0,33.6,0.627,50\n1,85,66,29,0,26.6,0.351,31\n8,abc,64,0,0,23.3,0.672,32\n"
    )
    out = tmp_path / "scores.csv"
    proc = subprocess.run(
        [sys.executable, "-m", "diabetes_risk", "predict", "--file", str(csv_in), "--out", str(out)],
        env=cli_env(local_cloud),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "row 3 glucose: not a number: 'abc'" in proc.stderr  # reported, not sent; the rest scored
    lines = out.read_text().splitlines()
    assert lines[0] == "row,probability,risk_band" and [line.split(",")[0] for line in lines[1:]] == ["1", "2"]
