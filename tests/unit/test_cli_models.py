"""`diabetes-risk models` and `train --promotion`: refused input, decisions that cannot apply, and an MLflow or S3
that is down, each with a message that says what happened (moto S3, no network)."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from typer.testing import CliRunner

from diabetes_risk.cli import app
from diabetes_risk.cli import models as models_cli
from inference_core.contracts import ModelRef, ServingPointer
from training.registry import POINTER_KEY

REF = {
    "family": "logistic_regression",
    "onnx_sha256": "0" * 64,
    "profile_key": "p",
    "model_card_key": "c",
    "features": ["glucose"],
    "thresholds": {"decision": 0.3, "low": 0.1, "high": 0.6},
    "metrics": {"roc_auc": 0.85},
    "mlflow_run_id": "r",
    "training_data_uri": "u",
    "training_data_sha256": "h",
    "trained_at": "t",
    "promoted_at": "t",
}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["train", "--promotion", "sometimes"], "bad --promotion 'sometimes'"),
        (["models", "--window", "5"], "bad --window '5'"),
        (["models", "promote", "v3", "--reason", "x"], "bad version 'v3'"),
        (["models", "rollout", "wobble"], "bad mode 'wobble'"),
    ],
)
def test_bad_input_is_refused_before_anything_is_touched(args, message):
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2 and message in result.output


@pytest.fixture
def serving(s3, monkeypatch):
    """A champion v1 with a previous v0 in (moto) S3; MLflow unreachable (nothing listens on port 9)."""
    from mlflow import MlflowClient

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    s3.create_bucket(Bucket="artifacts")
    pointer = ServingPointer(
        model_name="diabetes-risk",
        model_version="1",
        onnx_key="models/v1/model.onnx",
        previous=ModelRef(model_version="0", onnx_key="models/v0/model.onnx", **{**REF, "onnx_sha256": "1" * 64}),
        **REF,
    )
    s3.put_object(Bucket="artifacts", Key=POINTER_KEY, Body=pointer.model_dump_json().encode())
    cloud = SimpleNamespace(mlflow_url="http://127.0.0.1:9", prometheus_url="http://127.0.0.1:9")
    monkeypatch.setattr(models_cli, "_context", lambda: (cloud, "artifacts", s3, MlflowClient(cloud.mlflow_url)))
    return s3


def _pointer(s3) -> dict:
    return json.loads(s3.get_object(Bucket="artifacts", Key=POINTER_KEY)["Body"].read())


def test_mlflow_down_after_the_pointer_changed_says_so(serving):
    result = CliRunner().invoke(app, ["models", "rollback", "--reason", "drill"])
    assert result.exit_code == 1
    assert "rollback: champion v1 → v0" in result.output
    assert "serving changed, but MLflow at http://127.0.0.1:9 was not updated" in result.output
    assert _pointer(serving)["model_version"] == "0"  # the decision itself happened


def test_a_decision_that_cannot_apply_changes_nothing(serving):
    before = _pointer(serving)
    result = CliRunner().invoke(app, ["models", "rollout", "canary", "--share", "0.3"])
    assert result.exit_code == 1 and "cannot rollout: canary needs a challenger" in result.output
    result = CliRunner().invoke(app, ["models", "promote", "7", "--reason", "x"])
    assert result.exit_code == 1 and "v7 was never published to serving" in result.output
    assert _pointer(serving) == before


def test_listing_with_mlflow_down_still_shows_what_serves(serving):
    result = CliRunner().invoke(app, ["models"])
    assert result.exit_code == 1
    assert "could not be asked for the versions" in result.output
    assert "serving: champion v1 (logistic_regression), rollout none, previous v0" in result.output
    assert "Prometheus not reachable" in result.output


def test_an_unreadable_pointer_is_named(s3, monkeypatch):
    cloud = SimpleNamespace(mlflow_url="http://127.0.0.1:9", prometheus_url="http://127.0.0.1:9")
    monkeypatch.setattr(models_cli, "_context", lambda: (cloud, "no-such-bucket", s3, None))
    result = CliRunner().invoke(app, ["models", "rollback", "--reason", "x"])
    assert result.exit_code == 1 and "rollback not applied: the serving pointer in s3://no-such-bucket" in result.output


def test_the_functions_zip_is_reproducible_and_ships_no_bytecode(tmp_path):
    import hashlib
    import io
    import zipfile

    from diabetes_risk.deploy import functions_zip

    (tmp_path / "predict" / "__pycache__").mkdir(parents=True)
    (tmp_path / "predict" / "app.py").write_text("x = 1\n")
    (tmp_path / "predict" / "__pycache__" / "app.cpython-313.pyc").write_bytes(b"\0")
    (tmp_path / "training.Dockerfile").write_text("FROM x\n")
    first = functions_zip(tmp_path)
    assert zipfile.ZipFile(io.BytesIO(first)).namelist() == ["predict/app.py"]
    (tmp_path / "predict" / "app.py").touch()  # a new mtime, same bytes: the same zip
    assert hashlib.sha256(functions_zip(tmp_path)).digest() == hashlib.sha256(first).digest()
    (tmp_path / "predict" / "app.py").write_text("x = 2\n")
    assert functions_zip(tmp_path) != first


def test_hotswap_is_refused_for_aws_and_without_a_match(monkeypatch):
    result = CliRunner().invoke(app, ["deploy", "--hotswap", "--target", "aws"])
    assert result.exit_code == 2 and "--hotswap is for the local target" in result.output
    result = CliRunner().invoke(app, ["deploy", "--function", "Predict"])
    assert result.exit_code == 2 and "--function goes with --hotswap" in result.output

    from diabetes_risk import deploy

    class Cfn:
        class exceptions:
            ClientError = RuntimeError

        def get_paginator(self, _):
            return SimpleNamespace(
                paginate=lambda **_: [
                    {
                        "StackResourceSummaries": [
                            {"ResourceType": "AWS::Lambda::Function", "PhysicalResourceId": "Fn-A"}
                        ]
                    }
                ]
            )

    monkeypatch.setattr("localcloud.smoke.clients", lambda cloud, *names: (Cfn(), None))
    with pytest.raises(deploy.DeployError, match="no deployed function matches Nope; the stack has: Fn-A"):
        deploy.hotswap_local(SimpleNamespace(), only=("Nope",))
