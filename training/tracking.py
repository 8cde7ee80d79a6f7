"""MLflow logging for one training: a parent run, a nested run per family, dataset lineage, the ONNX
model registered as `diabetes-risk`, and the promotion gate."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
import pandas as pd

from .registry import GateDecision, ServingPointer, decide, promote, read_pointer, register
from .settings import TrainingSettings


def _client(settings: TrainingSettings):
    from .imports import import_mlflow

    mlflow = import_mlflow()
    from mlflow import MlflowClient

    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    return mlflow, MlflowClient(settings.mlflow_tracking_uri)


def log_and_register(
    settings: TrainingSettings,
    *,
    pipeline_run_id: str,
    validated: dict,
    evaluated: dict,
    frames: dict[str, pd.DataFrame],
    reports: dict[str, dict],
    plots: list[Path],
    profile: dict,
    onnx_bytes: bytes,
    parity: dict,
    model_card: str,
    work: Path,
    timings: dict[str, float],
) -> tuple[str, str]:
    """Returns (MLflow parent run id, registered model version)."""
    import onnx

    mlflow, client = _client(settings)
    mlflow.set_experiment(settings.experiment)
    selected, features = evaluated["selected"], validated["features"]
    metrics = evaluated["holdout"][selected]
    train_ref, holdout_ref = validated["train"], validated["holdout"]
    with mlflow.start_run(run_name=f"training-{selected}") as parent:
        for ref, context in ((train_ref, "training"), (holdout_ref, "holdout")):
            source = ref["uri"] if ref["uri"].startswith("s3://") or not ref.get("local_path") else ref["local_path"]
            dataset = mlflow.data.from_pandas(
                frames[context],
                source=source,
                name=ref["uri"].rsplit("/", 1)[-1],
                digest=ref["sha256"][:36],
                targets="diabetes",
            )
            mlflow.log_input(dataset, context=context)
        mlflow.set_tags(
            {
                "pipeline_run_id": pipeline_run_id,
                "selected_family": selected,
                "training_data_sha256": train_ref["sha256"],
                "training_data_uri": train_ref["uri"],
                "training_data_version_id": train_ref.get("version_id") or "",
                "holdout_data_sha256": holdout_ref["sha256"],
            }
        )
        mlflow.log_params(
            {
                "features": ",".join(features),
                "folds": settings.folds,
                "seed": settings.seed,
                "selected_family": selected,
                **{f"threshold_{k}": v for k, v in evaluated["thresholds"].items()},
            }
        )
        for family, cv in evaluated["cv"].items():
            with mlflow.start_run(run_name=family, nested=True):
                mlflow.log_params({"family": family, **cv["best_params"]})
                mlflow.log_metrics(
                    {
                        "cv_roc_auc_mean": cv["cv_auc_mean"],
                        "cv_roc_auc_std": cv["cv_auc_std"],
                        "cv_roc_auc_se": cv.get("cv_auc_se", 0.0),
                        "fit_seconds": cv["fit_seconds"],
                        **{f"holdout_{k}": v for k, v in evaluated["holdout"][family].items()},
                    }
                )
        mlflow.log_metrics({f"holdout_{k}": v for k, v in metrics.items()})
        intervals = evaluated.get("holdout_ci", {}).get(selected, {})
        mlflow.log_metrics(
            {f"holdout_{k}_ci_{side}": ci[side] for k, ci in intervals.items() for side in ("low", "high")}
        )
        check = evaluated.get("calibration", {}).get(selected)
        if check:
            mlflow.log_metrics(
                {
                    "oof_brier_raw": check["brier_raw"],
                    "oof_brier_platt": check["brier_calibrated"],
                    "oof_ece_raw": check["ece_raw"],
                    "oof_ece_platt": check["ece_calibrated"],
                }
            )
            mlflow.set_tag("calibration", "platt" if check["applied"] else "none")
        mlflow.log_dict(evaluated.get("selection", {}), "selection.json")
        mlflow.log_metrics(
            {
                "cv_roc_auc_mean": evaluated["cv"][selected]["cv_auc_mean"],
                "onnx_parity_max_abs_diff": parity["max_abs_diff"],
                **{f"time_{k}": v for k, v in timings.items()},
            }
        )
        for plot in plots:
            mlflow.log_artifact(str(plot), artifact_path="plots")
        mlflow.log_text(model_card, "model_card.md")
        mlflow.log_dict(reports["train"], "validation/train.json")
        mlflow.log_dict(reports["holdout"], "validation/holdout.json")
        mlflow.log_dict(profile, "reference_profile.json")
        mlflow.log_dict(evaluated["importance"], "feature_importance.json")
        info = mlflow.onnx.log_model(
            onnx.load_from_string(onnx_bytes),
            name="model",
            pip_requirements=["onnxruntime"],
            save_as_external_data=False,
            extra_files=[
                str(_dump(work / "reference_profile.json", profile)),
                str(_dump(work / "thresholds.json", evaluated["thresholds"])),
            ],
        )
        version = register(
            client,
            parent.info.run_id,
            info.model_uri,
            model_id=info.model_id,
            tags={
                "family": selected,
                "holdout_roc_auc": f"{metrics['roc_auc']:.6f}",
                "holdout_brier": f"{metrics['brier']:.6f}",
                "onnx_sha256": parity["sha256"],
                "training_data_sha256": train_ref["sha256"],
                "features": ",".join(features),
            },
        )
        mlflow.set_tag("registered_version", version)
    return parent.info.run_id, version


def registered_for(settings: TrainingSettings, pipeline_run_id: str) -> dict | None:
    """The MLflow run and model version already registered for this pipeline run, if any."""
    _, client = _client(settings)
    experiment = client.get_experiment_by_name(settings.experiment)
    if experiment is None:
        return None
    runs = client.search_runs(
        [experiment.experiment_id],
        f"tags.pipeline_run_id = '{pipeline_run_id}' and tags.registered_version != ''",
        max_results=1,
    )
    if not runs:
        return None
    return {"mlflow_run_id": runs[0].info.run_id, "model_version": runs[0].data.tags["registered_version"]}


def onnx_probabilities(onnx_bytes: bytes, calibration: dict | None, X: pd.DataFrame) -> Any:
    """What serving would answer for these rows: the ONNX model through onnxruntime, then its calibration."""
    import numpy as np

    from inference_core.contracts import Calibration
    from inference_core.model_store import make_session
    from inference_core.scoring import calibrate

    session = make_session(onnx_bytes)
    outputs = [o.name for o in session.get_outputs()]
    name = "probabilities" if "probabilities" in outputs else outputs[-1]
    raw = session.run([name], {session.get_inputs()[0].name: X.to_numpy(dtype=np.float32)})[0]
    return calibrate(Calibration(**calibration) if calibration else None, np.asarray(raw, dtype=np.float64)[:, 1])


def paired_with_champion(
    s3, bucket: str, champion, holdout: pd.DataFrame, label: str, candidate_proba, gate
) -> Any | None:
    """The paired bootstrap of candidate vs the serving champion on the same holdout rows; None when the champion
    needs features this holdout lacks."""
    from .stats import paired_bootstrap

    if champion is None or not set(champion.features) <= set(holdout.columns):
        return None
    champion_bytes = s3.get_object(Bucket=bucket, Key=champion.onnx_key)["Body"].read()
    calibration = champion.calibration.model_dump() if champion.calibration else None
    champion_proba = onnx_probabilities(champion_bytes, calibration, holdout[champion.features])
    y = holdout[label].to_numpy().astype(int)
    return paired_bootstrap(y, candidate_proba, champion_proba, gate.resamples, seed=42, alpha=gate.alpha)


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
    holdout: pd.DataFrame,
    label: str,
    promotion: str = "immediate",
    s3=None,
) -> tuple[GateDecision, ServingPointer | None]:
    from inference_core.contracts import Rollout

    mlflow, client = _client(settings)
    s3 = s3 or boto3.client("s3")
    champion, etag = read_pointer(s3, settings.artifacts_bucket)  # the decision is written on this very read
    candidate_proba = onnx_probabilities(onnx_bytes, fields.get("calibration"), holdout[fields["features"]])
    comparison = paired_with_champion(
        s3, settings.artifacts_bucket, champion, holdout, label, candidate_proba, settings.gate
    )
    decision = decide(
        version, candidate_auc, champion.champion_ref() if champion else None, comparison, settings.gate, promotion
    )
    share = settings.shadow_share if promotion == "shadow" else settings.canary_share
    pointer = promote(
        client,
        s3,
        settings.artifacts_bucket,
        decision,
        promotion=promotion,
        rollout=Rollout(mode=promotion, share=share) if promotion != "immediate" else None,
        read=(champion, etag),
        onnx_bytes=onnx_bytes,
        profile=profile,
        model_card=model_card,
        fields=fields,
    )
    with mlflow.start_run(run_id=run_id):
        mlflow.set_tags(
            {"gate_decision": "promoted" if decision.promoted else "rejected", "gate_reason": decision.reason[:5000]}
        )
        if comparison is not None:
            mlflow.log_metrics(
                {
                    "gate_delta_roc_auc": comparison.delta,
                    "gate_delta_roc_auc_ci_low": comparison.low,
                    "gate_delta_roc_auc_ci_high": comparison.high,
                    "gate_p_worse": comparison.p_worse,
                }
            )
    return decision, pointer


def _dump(path: Path, doc: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2))
    return path
