"""The promotion gate and the serving pointer, with an in-process MLflow (SQLite) and moto S3."""

from __future__ import annotations

import json

import pytest

from training.registry import MODEL_NAME, POINTER_KEY, GateSettings, current_champion, decide, promote, register

GATE = GateSettings(min_auc=0.80, max_drop=0.01)


def test_gate_first_model_above_minimum_is_promoted():
    d = decide("1", 0.85, None, GATE)
    assert d.promoted and "no previous champion" in d.reason


def test_gate_below_minimum_is_rejected_with_reason():
    d = decide("2", 0.79, None, GATE)
    assert not d.promoted and "0.7900 is below the minimum 0.80" in d.reason


def test_gate_compares_with_the_champion():
    assert decide("3", 0.845, ("2", 0.85), GATE).promoted  # within 0.01
    d = decide("3", 0.835, ("2", 0.85), GATE)
    assert not d.promoted and "more than 0.01 below champion v2 (0.8500)" in d.reason


@pytest.fixture
def mlflow_client(tmp_path, monkeypatch):
    import mlflow
    from mlflow import MlflowClient

    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment("registry-test")  # not an experiment id cached from another test's database
    return MlflowClient(uri)


def _version(client, auc: float) -> str:
    import mlflow

    with mlflow.start_run() as run:
        mlflow.log_text("onnx", "model/model.onnx")
    return register(client, run.info.run_id, f"{run.info.artifact_uri}/model", tags={"holdout_roc_auc": str(auc)})


def test_promotion_publishes_files_then_pointer_and_rejection_changes_nothing(mlflow_client, s3):
    s3.create_bucket(Bucket="artifacts")
    fields = {
        "family": "xgboost",
        "features": ["glucose"],
        "thresholds": {"decision": 0.3, "low": 0.1, "high": 0.6},
        "metrics": {"roc_auc": 0.85},
        "mlflow_run_id": "r",
        "training_data_uri": "u",
        "training_data_sha256": "h",
        "trained_at": "t",
    }
    v1 = _version(mlflow_client, 0.85)
    assert str(mlflow_client.get_model_version_by_alias(MODEL_NAME, "challenger").version) == v1
    pointer = promote(
        mlflow_client,
        s3,
        "artifacts",
        decide(v1, 0.85, current_champion(mlflow_client), GATE),
        onnx_bytes=b"model-bytes",
        profile={"features": {}},
        model_card="# card",
        fields=fields,
    )
    assert pointer is not None and pointer.model_version == v1
    stored = json.loads(s3.get_object(Bucket="artifacts", Key=POINTER_KEY)["Body"].read())
    assert stored["onnx_key"] == f"models/v{v1}/model.onnx"
    assert s3.get_object(Bucket="artifacts", Key=stored["onnx_key"])["Body"].read() == b"model-bytes"
    assert current_champion(mlflow_client) == (v1, 0.85)

    v2 = _version(mlflow_client, 0.82)
    decision = decide(v2, 0.82, current_champion(mlflow_client), GATE)
    assert (
        promote(mlflow_client, s3, "artifacts", decision, onnx_bytes=b"worse", profile={}, model_card="", fields=fields)
        is None
    )
    assert current_champion(mlflow_client) == (v1, 0.85)  # champion untouched
    assert json.loads(s3.get_object(Bucket="artifacts", Key=POINTER_KEY)["Body"].read())["model_version"] == v1
    tags = mlflow_client.get_model_version(MODEL_NAME, v2).tags
    assert tags["gate_decision"] == "rejected" and "below champion" in tags["gate_reason"]
