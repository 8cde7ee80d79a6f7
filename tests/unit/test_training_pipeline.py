"""The whole pipeline in one process on the bundled data: MLflow in-process (SQLite), S3 via moto,
Feast with local files. Slow-ish (one full search, ~40 s on 2 cores), so it runs once per module."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from training.pipeline import run_training
from training.registry import MODEL_NAME, POINTER_KEY
from training.settings import TrainingSettings


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    import boto3
    import mlflow
    from moto import mock_aws

    tmp = tmp_path_factory.mktemp("pipeline")
    mp = pytest.MonkeyPatch()
    for key in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_PROFILE"):
        mp.delenv(key, raising=False)
    mp.setenv("AWS_ACCESS_KEY_ID", "testing")
    mp.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    mp.setenv("AWS_DEFAULT_REGION", "us-east-1")
    mp.chdir(tmp)
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="artifacts")
        settings = TrainingSettings(
            artifacts_bucket="artifacts",
            MLFLOW_TRACKING_URI=f"sqlite:///{tmp / 'mlflow.db'}",
            work_dir=tmp / "work",
            offline_store=str(tmp / "measurements"),  # s3fs (Feast's S3 reader) is not patched by moto
            feast_registry=str(tmp / "registry.db"),
        )
        stages: list[str] = []
        result = run_training(settings, progress=lambda stage, message: stages.append(stage), s3=s3)
        pointer = json.loads(s3.get_object(Bucket="artifacts", Key=POINTER_KEY)["Body"].read())
        onnx_bytes = s3.get_object(Bucket="artifacts", Key=pointer["onnx_key"])["Body"].read()
        client = mlflow.MlflowClient(settings.mlflow_tracking_uri)
        yield {
            "result": result,
            "stages": stages,
            "pointer": pointer,
            "onnx": onnx_bytes,
            "client": client,
            "settings": settings,
            "s3": s3,
        }
    mp.undo()


def test_selected_model_meets_the_quality_bar(trained):
    result = trained["result"]
    selected = result.holdout[result.selected_family]
    assert selected["roc_auc"] >= 0.80
    assert selected["brier"] <= 0.16
    assert result.onnx_parity_max_abs_diff <= 1e-4
    assert set(result.holdout) == {"logistic_regression", "random_forest", "xgboost"}


def test_every_stage_ran_in_order_and_was_timed(trained):
    from training.pipeline import STAGES

    assert trained["stages"] == list(STAGES)
    assert set(STAGES) <= set(trained["result"].timings_s)


def test_promoted_champion_and_serving_pointer(trained):
    result, pointer, client = trained["result"], trained["pointer"], trained["client"]
    assert result.promoted and result.model_version == pointer["model_version"]
    assert str(client.get_model_version_by_alias(MODEL_NAME, "champion").version) == result.model_version
    import hashlib

    assert hashlib.sha256(trained["onnx"]).hexdigest() == pointer["onnx_sha256"]
    assert pointer["features"] == [
        "pregnancies",
        "glucose",
        "blood_pressure",
        "skin_thickness",
        "bmi",
        "diabetes_pedigree",
        "age",
    ]
    assert pointer["training_data_sha256"] == result.train_data.sha256
    assert pointer["mlflow_run_id"] == result.mlflow_run_id
    t = pointer["thresholds"]
    assert t["low"] <= t["decision"] <= t["high"]


def test_mlflow_run_has_nested_families_datasets_and_artifacts(trained):
    client, result = trained["client"], trained["result"]
    run = client.get_run(result.mlflow_run_id)
    assert run.data.tags["training_data_sha256"] == result.train_data.sha256
    assert {d.dataset.digest for d in run.inputs.dataset_inputs} == {
        result.train_data.sha256[:36],
        result.holdout_data.sha256[:36],
    }
    children = client.search_runs([run.info.experiment_id], f"tags.mlflow.parentRunId = '{run.info.run_id}'")
    assert sorted(c.data.params["family"] for c in children) == ["logistic_regression", "random_forest", "xgboost"]
    paths = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"plots", "model_card.md", "reference_profile.json", "validation"} <= paths
    plots = {a.path for a in client.list_artifacts(run.info.run_id, "plots")}
    assert {f"plots/{n}.png" for n in ("roc", "pr", "calibration", "confusion_matrix", "feature_importance")} == plots


def test_onnx_from_s3_scores_like_the_pointer_says(trained, pima):
    from training.export import onnx_proba

    _, holdout = pima
    features = trained["pointer"]["features"]
    proba = onnx_proba(trained["onnx"], holdout.frame[features].to_numpy())
    assert proba.shape == (332,) and np.all((proba > 0) & (proba < 1))


def test_training_keeps_its_measurements_offline_and_materialises_after_the_gate(trained):
    """The run's measurements went to the offline store by screening day; the online store got the latest per
    patient (SQLite here: no DynamoDB in this in-process run); the training set is the point-in-time join."""
    from training import steps

    result, settings = trained["result"], trained["settings"]
    assert "materialize" in trained["stages"] and result.promoted
    files = sorted((Path(settings.offline_store)).glob("date=2023-*/train-*.parquet"))
    assert 10 <= len(files) <= 24
    config = steps.feast_config(settings, cloud=True)
    from training.features import open_store

    online = (
        open_store(config)
        .get_online_features(features=["patient_measurements:glucose"], entity_rows=[{"patient_id": "pima-tr2-0001"}])
        .to_dict()
    )
    from training.data import load_bundled

    assert online["glucose"] == [float(load_bundled("train").frame["glucose"].iloc[0])]


def test_register_retried_never_creates_a_second_version(trained):
    from training import steps
    from training.store import S3RunStore

    result, client = trained["result"], trained["client"]
    store = S3RunStore(trained["s3"], "artifacts", result.run_id)
    versions_before = len(client.search_model_versions("name = 'diabetes-risk'"))
    work = trained["settings"].work_dir
    assert steps.register_step(trained["settings"], store, result.run_id, work)["model_version"] == result.model_version
    # lost the record after registering (e.g. the Lambda timed out right after MLflow answered)
    trained["s3"].delete_object(Bucket="artifacts", Key=f"runs/{result.run_id}/register.json")
    again = steps.register_step(trained["settings"], store, result.run_id, work)
    assert again == {"mlflow_run_id": result.mlflow_run_id, "model_version": result.model_version}
    assert len(client.search_model_versions("name = 'diabetes-risk'")) == versions_before
