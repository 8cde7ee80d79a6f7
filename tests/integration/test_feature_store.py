"""The feature store on the local cloud: training wrote its measurements to the offline store (Parquet in the data
bucket, by date) and Feast materialised them into DynamoDB after the gate; a clinic file with patient ids is scored,
its rows land in the offline store and online, and `POST /predict {"patient_id"}` answers what the batch did; a later
file changes the answer; the point-in-time join over the deployed offline store never uses a later measurement."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pandas as pd
import pyarrow.parquet as pq
import pytest
import requests

from batch_scoring.service import result_name
from diabetes_risk.batch_client import Upload, wait_for_result
from diabetes_risk.predict_client import local_api_url
from inference_core.contracts import EXAMPLE_PATIENT
from inference_core.feature_layout import MEASUREMENTS_PREFIX
from tests.integration.conftest import cli_env, wait_until

pytestmark = pytest.mark.integration
FEATURES = list(EXAMPLE_PATIENT)


@pytest.fixture(scope="module")
def api_url(local_cloud, deployed, champion_run) -> str:
    return local_api_url(local_cloud.localstack_url, deployed["ApiId"])


def features_get(local_cloud, patient: str) -> dict | None:
    proc = subprocess.run(
        [sys.executable, "-m", "diabetes_risk", "features", "get", patient, "--json"],
        env=cli_env(local_cloud),
        capture_output=True,
        text=True,
        timeout=120,
    )
    if proc.returncode != 0:
        assert "unknown patient" in proc.stderr, proc.stderr[-2000:]
        return None
    return json.loads(proc.stdout)


def score(aws, deployed, key: str, rows: list[dict]) -> dict:
    bucket = deployed["BatchBucket"]
    body = pd.DataFrame(rows, columns=["patient_id", "measured_at", *FEATURES]).to_csv(index=False).encode()
    put = aws.s3.put_object(Bucket=bucket, Key=key, Body=body)
    upload = Upload(bucket, key, put.get("VersionId"), result_name(key, put.get("VersionId"), put["ETag"]))
    kind, manifest = wait_for_result(aws.s3, upload, 180, poll_s=0.5)
    assert kind == "manifest", manifest
    return manifest


def batch_probabilities(aws, deployed, manifest: dict) -> dict[str, float]:
    data = aws.s3.get_object(Bucket=deployed["BatchBucket"], Key=manifest["output_keys"]["predictions.parquet"])
    table = pq.read_table(io.BytesIO(data["Body"].read())).to_pylist()
    return {r["patient_id"]: r["probability"] for r in table}


def test_training_wrote_its_measurements_offline_and_materialised_them(local_cloud, aws, deployed, champion_run):
    listed = aws.s3.list_objects_v2(Bucket=deployed["DataBucket"], Prefix=MEASUREMENTS_PREFIX).get("Contents", [])
    train_files = [o["Key"] for o in listed if "/train-" in o["Key"]]
    assert train_files and all(k.split("/")[2].startswith("date=2023-") for k in train_files)  # derived screening days
    stored = wait_until(lambda: features_get(local_cloud, "pima-tr2-0001"), 60, "pima-tr2-0001 online")
    from training.data import load_bundled

    first = load_bundled("train").frame.iloc[0]
    for name in FEATURES:
        assert stored["features"][name] == pytest.approx(float(first[name]))
    assert stored["measured_at"].startswith("2023-") and stored["stale"] is True  # 2023 is past the default year


def test_a_clinic_file_then_predict_by_patient_id_answers_what_the_batch_did(local_cloud, aws, deployed, api_url):
    headers = {"Authorization": _token(local_cloud)}
    first_day = (datetime.now(UTC) - timedelta(days=10)).strftime("%Y-%m-%d")
    rows = [
        {"patient_id": f"fs-{i}", "measured_at": first_day, **EXAMPLE_PATIENT, "glucose": 100 + 7 * i, "age": 30 + i}
        for i in range(8)
    ]
    manifest = score(aws, deployed, "inbox/feature-store/clinic-1.csv", rows)
    assert manifest["features"]["rows_stored"] == 8 and manifest["features"]["days"] == [first_day]
    probabilities = batch_probabilities(aws, deployed, manifest)
    online = wait_until(
        lambda: (s := features_get(local_cloud, "fs-3")) and s["measured_at"].startswith(first_day) and s,
        120,
        "fs-3's batch measurements online",
    )
    assert online["features"]["glucose"] == 121.0 and online["stale"] is False

    answer = requests.post(f"{api_url}/predict", json={"patient_id": "fs-3"}, headers=headers, timeout=60)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["predictions"][0]["probability"] == pytest.approx(probabilities["fs-3"], abs=1e-6)
    assert body["features"]["measured_at"].startswith(first_day) and body["features"]["stale"] is False

    unknown = requests.post(f"{api_url}/predict", json={"patient_id": "fs-nobody"}, headers=headers, timeout=60)
    assert unknown.status_code == 404 and unknown.json()["details"][0]["field"] == "patient_id"

    # a later visit: new measurements for fs-3 change the online answer
    later_day = (datetime.now(UTC) - timedelta(days=1)).strftime("%Y-%m-%d")
    later = [{"patient_id": "fs-3", "measured_at": later_day, **EXAMPLE_PATIENT, "glucose": 199, "age": 33}]
    second = score(aws, deployed, "inbox/feature-store/clinic-2.csv", later)
    new_probability = batch_probabilities(aws, deployed, second)["fs-3"]
    assert new_probability != pytest.approx(probabilities["fs-3"], abs=1e-3)
    wait_until(
        lambda: (s := features_get(local_cloud, "fs-3")) and s["measured_at"].startswith(later_day),
        120,
        "fs-3's later visit online",
    )
    again = requests.post(f"{api_url}/predict", json={"patient_id": "fs-3"}, headers=headers, timeout=60).json()
    assert again["predictions"][0]["probability"] == pytest.approx(new_probability, abs=1e-6)
    other = requests.post(f"{api_url}/predict", json={"patient_id": "fs-4"}, headers=headers, timeout=60).json()
    assert other["predictions"][0]["probability"] == pytest.approx(probabilities["fs-4"], abs=1e-6)  # untouched


def test_point_in_time_join_over_the_deployed_offline_store_never_leaks(local_cloud, aws, deployed, monkeypatch):
    from training.features import FeastConfig, apply, point_in_time, write_measurements

    for key, value in {**local_cloud.client_env(), "FEAST_S3_ENDPOINT_URL": local_cloud.localstack_url}.items():
        monkeypatch.setenv(key, value)
    config = FeastConfig(
        offline_root=f"s3://{deployed['DataBucket']}/{MEASUREMENTS_PREFIX}",
        registry_path=f"s3://{deployed['ArtifactsBucket']}/feast/registry.db",
        online="dynamodb",
        table_template=deployed["OnlineTableTemplate"],
        region=local_cloud.region,
        s3_endpoint=local_cloud.localstack_url,
    )
    t0 = datetime(2025, 6, 2, 9, tzinfo=UTC)
    rows = [
        {"patient_id": "pit-1", "measured_at": t0, **EXAMPLE_PATIENT, "glucose": 110.0},
        {"patient_id": "pit-1", "measured_at": t0 + timedelta(days=40), **EXAMPLE_PATIENT, "glucose": 260.0},
    ]
    write_measurements(pd.DataFrame(rows), config.offline_root, "pit-test", s3=aws.s3)
    labels = pd.DataFrame(
        {
            "patient_id": ["pit-1", "pit-1"],
            "diagnosed_at": [t0 + timedelta(days=20), t0 + timedelta(days=50)],
            "diabetes": [1.0, 1.0],
        }
    )
    joined = point_in_time(apply(config), labels, ["glucose"])
    assert joined["glucose"].tolist() == [110.0, 260.0]  # the diagnosis on day 20 never sees day 40's value


def _token(local_cloud) -> str:
    from diabetes_risk.access import local_token

    return f"Bearer {local_token(local_cloud, 'clinic-demo', ['predict', 'model:read'])}"
