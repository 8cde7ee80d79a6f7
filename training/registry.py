"""MLflow registry and the promotion gate; the serving pointer the prediction side reads from S3.

The selected model is registered as `diabetes-risk` with alias `challenger`. Only the quality gate moves
`champion`: holdout ROC AUC at least `min_auc` and no more than `max_drop` below the current champion.
Promotion copies the ONNX file, reference profile and model card to the artifacts bucket and then writes
`serving/champion.json` last, so a reader never sees a pointer to files that are not there yet.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel

from inference_core.contracts import ServingPointer

MODEL_NAME = "diabetes-risk"
POINTER_KEY = "serving/champion.json"


class GateSettings(BaseModel):
    min_auc: float = 0.80
    max_drop: float = 0.01


class GateDecision(BaseModel):
    promoted: bool
    reason: str
    candidate_version: str
    candidate_auc: float
    champion_version: str | None = None
    champion_auc: float | None = None
    champion_metrics: dict[str, float] | None = None  # the current champion's holdout metrics (registry tags)


def register(client, run_id: str, model_uri: str, tags: dict[str, str], model_id: str | None = None) -> str:
    """Create a version of MODEL_NAME from a logged model; alias it `challenger`. Returns the version."""
    from mlflow.exceptions import MlflowException

    try:
        client.create_registered_model(MODEL_NAME, description="Diabetes risk from routine measurements")
    except MlflowException as exc:
        if "already exists" not in str(exc).lower() and "RESOURCE_ALREADY_EXISTS" not in str(exc):
            raise
    version = client.create_model_version(MODEL_NAME, source=model_uri, run_id=run_id, tags=tags, model_id=model_id)
    client.set_registered_model_alias(MODEL_NAME, "challenger", version.version)
    return str(version.version)


def current_champion(client) -> tuple[str, float] | None:
    from mlflow.exceptions import MlflowException

    try:
        version = client.get_model_version_by_alias(MODEL_NAME, "champion")
    except MlflowException:
        return None
    return str(version.version), float(version.tags.get("holdout_roc_auc", "nan"))


def champion_holdout_metrics(client) -> dict[str, float] | None:
    """The champion version's holdout metrics from its registry tags (`holdout_roc_auc`, `holdout_brier`, ...)."""
    from mlflow.exceptions import MlflowException

    try:
        version = client.get_model_version_by_alias(MODEL_NAME, "champion")
    except MlflowException:
        return None
    out = {}
    for key, value in version.tags.items():
        if key.startswith("holdout_"):
            try:
                out[key.removeprefix("holdout_")] = float(value)
            except ValueError:
                continue
    return out


def decide(
    candidate_version: str, candidate_auc: float, champion: tuple[str, float] | None, gate: GateSettings
) -> GateDecision:
    base = {
        "candidate_version": candidate_version,
        "candidate_auc": candidate_auc,
        "champion_version": champion[0] if champion else None,
        "champion_auc": champion[1] if champion else None,
    }
    if not candidate_auc >= gate.min_auc:
        return GateDecision(
            promoted=False,
            reason=(f"holdout ROC AUC {candidate_auc:.4f} is below the minimum {gate.min_auc:.2f}"),
            **base,
        )
    if champion and not candidate_auc >= champion[1] - gate.max_drop:
        return GateDecision(
            promoted=False,
            reason=(
                f"holdout ROC AUC {candidate_auc:.4f} is more than {gate.max_drop:.2f} below champion "
                f"v{champion[0]} ({champion[1]:.4f})"
            ),
            **base,
        )
    reason = f"holdout ROC AUC {candidate_auc:.4f} >= {gate.min_auc:.2f}" + (
        f" and within {gate.max_drop:.2f} of champion v{champion[0]} ({champion[1]:.4f})"
        if champion
        else "; no previous champion"
    )
    return GateDecision(promoted=True, reason=reason, **base)


def publish(
    s3,
    bucket: str,
    *,
    version: str,
    onnx_bytes: bytes,
    profile: dict,
    model_card: str,
    fields: dict[str, Any],
) -> ServingPointer:
    """Copy the serving files to the artifacts bucket, then write the pointer (last: the commit point)."""
    prefix = f"models/v{version}"
    s3.put_object(Bucket=bucket, Key=f"{prefix}/model.onnx", Body=onnx_bytes)
    s3.put_object(Bucket=bucket, Key=f"{prefix}/reference_profile.json", Body=json.dumps(profile).encode())
    s3.put_object(Bucket=bucket, Key=f"{prefix}/model_card.md", Body=model_card.encode())
    pointer = ServingPointer(
        model_name=MODEL_NAME,
        model_version=version,
        onnx_key=f"{prefix}/model.onnx",
        onnx_sha256=hashlib.sha256(onnx_bytes).hexdigest(),
        profile_key=f"{prefix}/reference_profile.json",
        model_card_key=f"{prefix}/model_card.md",
        promoted_at=datetime.now(UTC).isoformat(),
        **fields,
    )
    s3.put_object(
        Bucket=bucket,
        Key=POINTER_KEY,
        Body=pointer.model_dump_json(indent=2).encode(),
        ContentType="application/json",
    )
    return pointer


def promote(client, s3, bucket: str, decision: GateDecision, **publish_args) -> ServingPointer | None:
    """Apply a gate decision: record it on the version; on a pass, publish and move `champion`."""
    client.set_model_version_tag(
        MODEL_NAME,
        decision.candidate_version,
        "gate_decision",
        "promoted" if decision.promoted else "rejected",
    )
    client.set_model_version_tag(MODEL_NAME, decision.candidate_version, "gate_reason", decision.reason)
    if not decision.promoted:
        return None
    pointer = publish(s3, bucket, version=decision.candidate_version, **publish_args)
    client.set_registered_model_alias(MODEL_NAME, "champion", decision.candidate_version)
    return pointer
