"""MLflow logging for one training: a parent run, a nested run per family, dataset lineage, the ONNX
model registered as `diabetes-risk`, and the promotion gate."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3

from .data import LoadedTable
from .registry import MODEL_NAME, GateDecision, ServingPointer, current_champion, decide, promote, register
from .settings import TrainingSettings


def _client(settings: TrainingSettings):
    import mlflow
    from mlflow import MlflowClient

    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    return mlflow, MlflowClient(settings.mlflow_tracking_uri)


def log_and_register(
    settings: TrainingSettings,
    *,
    families,
    chosen,
    holdout,
    thresholds,
    features,
    train: LoadedTable,
    holdout_table: LoadedTable,
    train_report,
    holdout_report,
    plots,
    profile,
    onnx_bytes: bytes,
    parity: dict,
    model_card: str,
    work: Path,
    importance: dict[str, float],
    timings: dict[str, float],
) -> tuple[str, str]:
    """Returns (parent run id, registered model version)."""
    import onnx

    mlflow, client = _client(settings)
    mlflow.set_experiment(settings.experiment)
    with mlflow.start_run(run_name=f"training-{chosen.family}") as parent:
        for ref, table, context in (
            (train.ref, train.frame, "training"),
            (holdout_table.ref, holdout_table.frame, "holdout"),
        ):
            source = ref.uri if ref.uri.startswith("s3://") or not ref.local_path else ref.local_path
            dataset = mlflow.data.from_pandas(
                table,
                source=source,
                name=ref.uri.rsplit("/", 1)[-1],
                digest=ref.sha256[:36],
                targets="diabetes",
            )
            mlflow.log_input(dataset, context=context)
        mlflow.set_tags(
            {
                "selected_family": chosen.family,
                "training_data_sha256": train.ref.sha256,
                "training_data_uri": train.ref.uri,
                "training_data_version_id": train.ref.version_id or "",
                "holdout_data_sha256": holdout_table.ref.sha256,
            }
        )
        mlflow.log_params(
            {
                "features": ",".join(features),
                "folds": settings.folds,
                "seed": settings.seed,
                "selected_family": chosen.family,
                **{f"threshold_{k}": v for k, v in thresholds.model_dump().items()},
            }
        )
        for result in families:
            with mlflow.start_run(run_name=result.family, nested=True):
                mlflow.log_params({"family": result.family, **result.best_params})
                mlflow.log_metrics(
                    {
                        "cv_roc_auc_mean": result.cv_auc_mean,
                        "cv_roc_auc_std": result.cv_auc_std,
                        "fit_seconds": result.fit_seconds,
                        **{f"holdout_{k}": v for k, v in holdout[result.family].items()},
                    }
                )
        mlflow.log_metrics({f"holdout_{k}": v for k, v in holdout[chosen.family].items()})
        mlflow.log_metrics(
            {
                "cv_roc_auc_mean": chosen.cv_auc_mean,
                "onnx_parity_max_abs_diff": parity["max_abs_diff"],
                **{f"time_{k}": v for k, v in timings.items()},
            }
        )
        for plot in plots:
            mlflow.log_artifact(str(plot), artifact_path="plots")
        mlflow.log_text(model_card, "model_card.md")
        mlflow.log_dict(train_report.model_dump(), "validation/train.json")
        mlflow.log_dict(holdout_report.model_dump(), "validation/holdout.json")
        mlflow.log_dict(profile, "reference_profile.json")
        mlflow.log_dict(importance, "feature_importance.json")
        info = mlflow.onnx.log_model(
            onnx.load_from_string(onnx_bytes),
            name="model",
            pip_requirements=["onnxruntime"],
            save_as_external_data=False,
            extra_files=[
                str(_dump(work / "reference_profile.json", profile)),
                str(_dump(work / "thresholds.json", thresholds.model_dump())),
            ],
        )
        version = register(
            client,
            parent.info.run_id,
            info.model_uri,
            model_id=info.model_id,
            tags={
                "family": chosen.family,
                "holdout_roc_auc": f"{holdout[chosen.family]['roc_auc']:.6f}",
                "holdout_brier": f"{holdout[chosen.family]['brier']:.6f}",
                "onnx_sha256": parity["sha256"],
                "training_data_sha256": train.ref.sha256,
                "features": ",".join(features),
            },
        )
        mlflow.set_tag("registered_version", version)
    return parent.info.run_id, version


def gate_and_promote(
    settings: TrainingSettings,
    *,
    run_id: str,
    version: str,
    candidate_auc: float,
    onnx_bytes: bytes,
    profile: dict,
    model_card: str,
    fields: dict[str, Any],
    s3=None,
) -> tuple[GateDecision, ServingPointer | None]:
    mlflow, client = _client(settings)
    decision = decide(version, candidate_auc, current_champion(client), settings.gate)
    s3 = s3 or boto3.client("s3")
    pointer = promote(
        client,
        s3,
        settings.artifacts_bucket,
        decision,
        onnx_bytes=onnx_bytes,
        profile=profile,
        model_card=model_card,
        fields=fields,
    )
    with mlflow.start_run(run_id=run_id):
        mlflow.set_tags(
            {"gate_decision": "promoted" if decision.promoted else "rejected", "gate_reason": decision.reason}
        )
    return decision, pointer


def _dump(path: Path, doc: Any) -> Path:
    path.write_text(json.dumps(doc, indent=2))
    return path


__all__ = ["MODEL_NAME", "gate_and_promote", "log_and_register"]
