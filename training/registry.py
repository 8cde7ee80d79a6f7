"""MLflow registry, the promotion gate, and the serving pointer the prediction side reads from S3.

Every trained model is registered as `diabetes-risk` with alias `candidate`. The gate compares it with the
serving champion on the same holdout rows (a paired bootstrap of ROC AUC) and refuses it when it is below
`min_auc` or significantly worse than the champion. A model that passes is published as the champion
(`promotion: immediate`) or as the challenger (`shadow`, `canary`), which must then earn its place on live
traffic before `promote` makes it the champion; `rollback` brings back the previous champion.

The serving pointer `serving/champion.json` carries the champion, the challenger, the previous champion and
the rollout in one object. It is written last (after the model files), with S3's conditional write on the
ETag it was read at, so two decisions at once cannot overwrite each other; the MLflow aliases (`champion`,
`challenger`, `previous`) and who/when/why tags follow it.
"""

from __future__ import annotations

import getpass
import hashlib
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel

from inference_core.contracts import ModelRef, Rollout, ServingPointer

MODEL_NAME = "diabetes-risk"
POINTER_KEY = "serving/champion.json"
ALIASES = ("champion", "challenger", "previous")
Promotion = Literal["immediate", "shadow", "canary"]


class GateSettings(BaseModel):
    min_auc: float = 0.80
    alpha: float = 0.05  # the candidate is refused when the paired test says "worse" at this level
    resamples: int = 2000
    # promotion straight to champion needs more: non-inferiority, the (1 - 2 alpha) interval of the AUC difference
    # entirely above -margin. A challenger only needs "not worse"; live traffic decides the rest.
    margin: float = 0.02


class GateDecision(BaseModel):
    promoted: bool  # passed the gate (published as champion or challenger)
    reason: str
    candidate_version: str
    candidate_auc: float
    champion_version: str | None = None
    champion_auc: float | None = None
    champion_metrics: dict[str, float] | None = None
    comparison: dict[str, Any] | None = None  # stats.PairedComparison, candidate minus champion


class DecisionError(ValueError):
    """A models decision that cannot be applied (nothing to promote, no previous champion, ...): the message
    says what the pointer holds instead."""


class PointerChanged(RuntimeError):
    """The pointer changed between reading and writing it: someone else decided meanwhile."""


def register(client, run_id: str, model_uri: str, tags: dict[str, str], model_id: str | None = None) -> str:
    """Create a version of MODEL_NAME from a logged model; alias it `candidate`. Returns the version."""
    from mlflow.exceptions import MlflowException

    try:
        client.create_registered_model(MODEL_NAME, description="Diabetes risk from routine measurements")
    except MlflowException as exc:
        if "already exists" not in str(exc).lower() and "RESOURCE_ALREADY_EXISTS" not in str(exc):
            raise
    version = client.create_model_version(MODEL_NAME, source=model_uri, run_id=run_id, tags=tags, model_id=model_id)
    client.set_registered_model_alias(MODEL_NAME, "candidate", version.version)
    return str(version.version)


def alias_version(client, alias: str) -> str | None:
    """The version an alias points to; None when the alias (or the model) does not exist. An unreachable MLflow
    raises: "unset" must not be reported for "could not ask"."""
    from mlflow.exceptions import MlflowException

    try:
        return str(client.get_model_version_by_alias(MODEL_NAME, alias).version)
    except MlflowException as exc:
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE") or "not found" in str(exc).lower():
            return None
        raise


def decide(
    candidate_version: str,
    candidate_auc: float,
    champion: ModelRef | None,
    comparison: BaseModel | None,
    gate: GateSettings,
    promotion: Promotion = "immediate",
) -> GateDecision:
    """Refuse below `min_auc`; refuse when the paired test on the same holdout rows shows the candidate worse than
    the champion (one-sided p < alpha). A challenger (shadow, canary) that is not worse passes: live traffic decides
    then. Straight to champion (immediate) it must also be non-inferior: the lower end of the interval of the AUC
    difference above -margin, so a holdout too small to see a drop cannot wave a worse model through."""
    base = {
        "candidate_version": candidate_version,
        "candidate_auc": candidate_auc,
        "champion_version": champion.model_version if champion else None,
        "champion_auc": champion.metrics.get("roc_auc") if champion else None,
        "champion_metrics": champion.metrics if champion else None,
        "comparison": comparison.model_dump() if comparison is not None else None,
    }
    if not candidate_auc >= gate.min_auc:
        return GateDecision(
            promoted=False,
            reason=f"holdout ROC AUC {candidate_auc:.4f} is below the minimum {gate.min_auc:.2f}",
            **base,
        )
    if champion is None:
        return GateDecision(
            promoted=True,
            reason=f"holdout ROC AUC {candidate_auc:.4f} >= {gate.min_auc:.2f}; no previous champion",
            **base,
        )
    if comparison is None:
        return GateDecision(
            promoted=True,
            reason=f"holdout ROC AUC {candidate_auc:.4f} >= {gate.min_auc:.2f}; champion v{champion.model_version} "
            "could not be scored on this holdout (other features), so there is no paired comparison",
            **base,
        )
    c = comparison.model_dump()
    figures = (
        f"ΔAUC {c['delta']:+.4f} vs champion v{champion.model_version} on the same {c['rows']} holdout rows "
        f"({c.get('level', 0.9):.0%} CI {c['low']:+.4f} to {c['high']:+.4f}, paired bootstrap, "
        f"one-sided p = {c['p_worse']:.3f})"
    )
    if c["p_worse"] < gate.alpha:
        return GateDecision(promoted=False, reason=f"significantly worse: {figures}", **base)
    if promotion == "immediate" and c["low"] < -gate.margin:
        return GateDecision(
            promoted=False,
            reason=f"not shown non-inferior within {gate.margin:.2f} (needed to replace the champion directly; "
            f"publish it as a challenger with --promotion shadow or canary instead): {figures}",
            **base,
        )
    return GateDecision(promoted=True, reason=f"not worse at alpha = {gate.alpha:.2f}: {figures}", **base)


def read_pointer(s3, bucket: str) -> tuple[ServingPointer | None, str | None]:
    """The pointer and the ETag it was read at (None, None when nothing is published yet)."""
    try:
        obj = s3.get_object(Bucket=bucket, Key=POINTER_KEY)
    except s3.exceptions.NoSuchKey:
        return None, None
    return ServingPointer.model_validate_json(obj["Body"].read()), obj.get("ETag")


def write_pointer(s3, bucket: str, pointer: ServingPointer, etag: str | None) -> None:
    """Conditional on the ETag read (or on no pointer yet): the decision lands whole or not at all."""
    from botocore.exceptions import ClientError

    condition = {"IfMatch": etag} if etag else {"IfNoneMatch": "*"}
    try:
        s3.put_object(
            Bucket=bucket,
            Key=POINTER_KEY,
            Body=pointer.model_dump_json(indent=2).encode(),
            ContentType="application/json",
            **condition,
        )
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        if code in ("PreconditionFailed", "ConditionalRequestConflict"):
            raise PointerChanged(
                "the serving pointer changed while this decision was being made (another promotion or rollback?); "
                "run the command again to decide on what is serving now"
            ) from exc
        raise


def publish_files(
    s3, bucket: str, *, version: str, onnx_bytes: bytes, profile: dict, model_card: str, fields: dict[str, Any]
) -> ModelRef:
    """The model's serving files and its description (`serving.json`, what `promote VERSION` reads back)."""
    prefix = f"models/v{version}"
    s3.put_object(Bucket=bucket, Key=f"{prefix}/model.onnx", Body=onnx_bytes)
    s3.put_object(Bucket=bucket, Key=f"{prefix}/reference_profile.json", Body=json.dumps(profile).encode())
    s3.put_object(Bucket=bucket, Key=f"{prefix}/model_card.md", Body=model_card.encode())
    ref = ModelRef(
        model_version=version,
        onnx_key=f"{prefix}/model.onnx",
        onnx_sha256=hashlib.sha256(onnx_bytes).hexdigest(),
        profile_key=f"{prefix}/reference_profile.json",
        model_card_key=f"{prefix}/model_card.md",
        promoted_at=datetime.now(UTC).isoformat(),
        **fields,
    )
    s3.put_object(Bucket=bucket, Key=f"{prefix}/serving.json", Body=ref.model_dump_json(indent=2).encode())
    return ref


def published_ref(s3, bucket: str, version: str) -> ModelRef | None:
    try:
        obj = s3.get_object(Bucket=bucket, Key=f"models/v{version}/serving.json")
    except s3.exceptions.NoSuchKey:
        return None
    return ModelRef.model_validate_json(obj["Body"].read())


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _pointer(champion: ModelRef, **rest: Any) -> ServingPointer:
    return ServingPointer(model_name=MODEL_NAME, **champion.model_dump(), **rest)


# The decisions: pure functions from the pointer before to the pointer after.


def as_champion(before: ServingPointer | None, ref: ModelRef) -> ServingPointer:
    """`ref` serves alone; the champion it replaces is kept as `previous` (a pending challenger is dropped: it was
    compared with a champion that no longer serves)."""
    if before is not None and before.model_version == ref.model_version and before.onnx_sha256 == ref.onnx_sha256:
        return before  # already serving (a retried promotion): never its own `previous`
    ref = ref.model_copy(update={"promoted_at": _now()})
    return _pointer(ref, previous=before.champion_ref() if before else None)


def as_challenger(before: ServingPointer | None, ref: ModelRef, rollout: Rollout) -> ServingPointer:
    """`ref` meets live traffic beside the champion; with no champion yet it simply becomes the champion."""
    if before is None:
        return as_champion(None, ref)
    if ref.model_version == before.model_version:
        raise DecisionError(f"v{ref.model_version} is already the champion")
    if before.challenger is not None and before.challenger.onnx_sha256 == ref.onnx_sha256 and before.rollout == rollout:
        return before  # already the challenger (a retried promotion)
    return before.model_copy(update={"challenger": ref, "rollout": rollout})


def promote_version(
    before: ServingPointer | None, version: str, load: Callable[[str], ModelRef | None]
) -> ServingPointer:
    """The challenger (or any published version) becomes the champion; the old champion becomes `previous`."""
    if before is None:
        raise DecisionError("nothing is serving yet: train a model first")
    if version == before.model_version:
        raise DecisionError(f"v{version} is already the champion")
    if before.challenger is not None and before.challenger.model_version == version:
        ref = before.challenger
    else:
        ref = load(version)
        if ref is None:
            live = (
                f"the challenger is v{before.challenger.model_version}"
                if before.challenger
                else "there is no challenger"
            )
            raise DecisionError(f"v{version} was never published to serving ({live})")
    return as_champion(before, ref)


def rollback(before: ServingPointer | None) -> ServingPointer:
    """The previous champion serves again; the one it replaces becomes `previous` (so a rollback can be undone)."""
    if before is None or before.previous is None:
        raise DecisionError("there is no previous champion to roll back to")
    return as_champion(before, before.previous)


def set_rollout(before: ServingPointer | None, mode: str, share: float) -> ServingPointer:
    if before is None:
        raise DecisionError("nothing is serving yet: train a model first")
    if mode != "none" and before.challenger is None:
        raise DecisionError(f"{mode} needs a challenger; train with --promotion shadow or canary first")
    return before.model_copy(update={"rollout": Rollout(mode=mode, share=share if mode != "none" else 0.0)})


def sync_aliases(client, pointer: ServingPointer, *, decision: str, reason: str, by: str | None = None) -> None:
    """MLflow follows the pointer: aliases `champion`/`challenger`/`previous`, and on the version the decision
    concerns who made it, when and why."""
    wanted = {
        "champion": pointer.model_version,
        "challenger": pointer.challenger.model_version if pointer.challenger else None,
        "previous": pointer.previous.model_version if pointer.previous else None,
    }
    for alias, version in wanted.items():
        if version is None:
            if alias_version(client, alias) is not None:
                client.delete_registered_model_alias(MODEL_NAME, alias)
        else:
            client.set_registered_model_alias(MODEL_NAME, alias, version)
    subject = (
        pointer.challenger.model_version if decision == "challenger" and pointer.challenger else pointer.model_version
    )
    tags = {
        "decision": decision,
        "decided_by": by or getpass.getuser(),
        "decided_at": _now(),
        "decision_reason": reason,
    }
    for key, value in tags.items():
        client.set_model_version_tag(MODEL_NAME, subject, key, value[:5000])
    if pointer.rollout.mode != "none":
        client.set_model_version_tag(
            MODEL_NAME, subject, "rollout", f"{pointer.rollout.mode}:{pointer.rollout.share:g}"
        )


def apply_decision(
    client,
    s3,
    bucket: str,
    change: Callable[[ServingPointer | None], ServingPointer],
    *,
    decision: str,
    reason: str,
    by: str | None = None,
    read: tuple[ServingPointer | None, str | None] | None = None,
    sync: bool = True,
) -> tuple[ServingPointer | None, ServingPointer]:
    """Read the pointer (or take the read the decision was made on: if it changed since, the write is refused),
    compute the new one, write it conditionally, then bring MLflow in line (`sync=False`: the caller does, to report
    an MLflow failure apart from the serving change that already happened)."""
    before, etag = read if read is not None else read_pointer(s3, bucket)
    after = change(before)
    if after is not before:
        write_pointer(s3, bucket, after, etag)
    if sync:
        sync_aliases(client, after, decision=decision, reason=reason, by=by)
    return before, after


def promote(
    client,
    s3,
    bucket: str,
    decision: GateDecision,
    *,
    promotion: Promotion = "immediate",
    rollout: Rollout | None = None,
    read: tuple[ServingPointer | None, str | None] | None = None,
    **publish_args,
) -> ServingPointer | None:
    """Apply a gate decision: record it on the version; on a pass, publish the files and the pointer (champion,
    or challenger in shadow/canary) and move the aliases. `read`: the pointer and ETag the gate compared with."""
    client.set_model_version_tag(
        MODEL_NAME, decision.candidate_version, "gate_decision", "promoted" if decision.promoted else "rejected"
    )
    client.set_model_version_tag(MODEL_NAME, decision.candidate_version, "gate_reason", decision.reason)
    if not decision.promoted:
        return None
    ref = publish_files(s3, bucket, version=decision.candidate_version, **publish_args)
    if promotion == "immediate":
        change, kind = (lambda before: as_champion(before, ref)), "promote"
    else:
        wanted = rollout or Rollout(mode=promotion, share=1.0 if promotion == "shadow" else 0.1)
        change, kind = (lambda before: as_challenger(before, ref, wanted)), "challenger"
    _, after = apply_decision(
        client, s3, bucket, change, decision=kind, reason=f"gate: {decision.reason}", by="training", read=read
    )
    return after
