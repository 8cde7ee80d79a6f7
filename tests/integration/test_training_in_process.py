"""`diabetes-risk train --in-process` against the local cloud: S3 for features, pointer and model files,
the MLflow server for runs, registry and artifacts (which land in the local S3)."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys

import pytest

from tests.integration.conftest import cli_env

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def trained(local_cloud, aws, tmp_path_factory):
    env = cli_env(local_cloud) | {"DR_WORK_DIR": str(tmp_path_factory.mktemp("train")), "COLUMNS": "160"}
    proc = subprocess.run(
        [sys.executable, "-m", "diabetes_risk", "train", "--in-process", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout[proc.stdout.index("{") :])


def test_champion_pointer_and_onnx_are_in_s3(trained, aws):
    pointer = json.loads(
        aws.s3.get_object(Bucket="diabetes-risk-artifacts", Key="serving/champion.json")["Body"].read()
    )
    assert trained["promoted"] and pointer["model_version"] == trained["model_version"]
    onnx_bytes = aws.s3.get_object(Bucket="diabetes-risk-artifacts", Key=pointer["onnx_key"])["Body"].read()
    assert hashlib.sha256(onnx_bytes).hexdigest() == pointer["onnx_sha256"]
    assert trained["holdout"][trained["selected_family"]]["roc_auc"] >= 0.80
    # the run's measurements went to the feature store's offline folder in the local S3, by screening day
    listed = aws.s3.list_objects_v2(Bucket="diabetes-risk-data", Prefix="features/measurements/").get("Contents", [])
    assert any(o["Key"].startswith("features/measurements/date=2023-") and "/train-" in o["Key"] for o in listed)


def test_champion_is_registered_in_the_mlflow_server(trained, local_cloud, aws):
    from mlflow import MlflowClient

    client = MlflowClient(local_cloud.mlflow_url)
    champion = client.get_model_version_by_alias("diabetes-risk", "champion")
    assert str(champion.version) == trained["model_version"]
    assert champion.tags["gate_decision"] == "promoted"
    run = client.get_run(trained["mlflow_run_id"])
    assert run.data.tags["training_data_sha256"] == trained["train_data"]["sha256"]
    keys = [o["Key"] for o in aws.s3.list_objects_v2(Bucket=local_cloud.mlflow_bucket)["Contents"]]
    assert any(trained["mlflow_run_id"] in k and k.endswith("plots/roc.png") for k in keys)
