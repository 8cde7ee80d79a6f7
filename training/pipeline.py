"""The whole training pipeline in one process: the same step functions the Step Functions state machine
runs as Lambdas, in the same order, with a progress callback and the time of every stage."""

from __future__ import annotations

import tempfile
import time
import uuid
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from . import steps
from .data import DatasetRef
from .settings import TrainingSettings
from .store import LocalRunStore, RunStore, S3RunStore

STAGES = ("validate", "features", "train", "evaluate", "export", "register", "promote", "materialize")
Progress = Callable[[str, str], None]  # (stage, message)


class TrainingResult(BaseModel):
    run_id: str
    selected_family: str
    model_version: str | None
    promoted: bool
    gate_reason: str
    published_as: str | None = None  # champion, challenger, or None when the gate refused it
    selection: dict[str, Any] = {}  # the one-SE rule's figures
    calibration: dict[str, Any] = {}  # per family: OOF Brier raw vs Platt-scaled, and whether it was applied
    holdout: dict[str, dict[str, float]]
    cv: dict[str, dict[str, Any]]
    thresholds: dict[str, float]
    onnx_parity_max_abs_diff: float
    mlflow_run_id: str | None
    pointer_uri: str | None
    timings_s: dict[str, float]
    train_data: DatasetRef
    holdout_data: DatasetRef
    validation: dict[str, str]


def _noop(stage: str, message: str) -> None:
    pass


def run_training(
    settings: TrainingSettings,
    train_uri: str | None = None,
    holdout_uri: str | None = None,
    progress: Progress = _noop,
    families: tuple[str, ...] | None = None,
    s3=None,
    run_id: str | None = None,
    promotion: str | None = None,
) -> TrainingResult:
    """validate → features (Feast) → train (each family) → evaluate & select → export ONNX → register → promote →
    materialize the online features (when the gate passed).

    With an S3 client the run's files go to s3://<artifacts>/runs/<run_id>/ (as under Step Functions);
    without, to a local folder under the work dir."""
    import os

    from .models import FAMILIES

    families = families or FAMILIES
    run_id = run_id or time.strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6]
    settings.work_dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f"{run_id}-", dir=settings.work_dir))
    store: RunStore = (
        S3RunStore(s3, settings.artifacts_bucket, run_id) if s3 is not None else LocalRunStore(work / "run")
    )
    timings: dict[str, float] = {}

    @contextmanager
    def stage(name: str, message: str):
        progress(name, message)
        t0 = time.perf_counter()
        yield
        timings[name] = round(time.perf_counter() - t0, 3)

    with stage("validate", "loading and validating training and holdout data (pandera)"):
        validated = steps.validate_step(settings, store, train_uri, holdout_uri)
    with stage("features", "registering and retrieving features (Feast)"):
        featured = steps.features_step(settings, store, work)
        timings.update(featured["timings_s"])
    with stage("train", f"cross-validated search: {', '.join(families)}"):
        cv = {f: steps.train_step(settings, store, f, n_jobs=os.cpu_count() or 1) for f in families}
    with stage("evaluate", "holdout metrics, thresholds, plots, model card"):
        steps.evaluate_step(settings, store, list(families), work)
    with stage("export", "exporting the selected pipeline to ONNX (parity check on the holdout)"):
        exported = steps.export_step(settings, store)
    with stage("register", "logging to MLflow and registering the model"):
        registered = steps.register_step(settings, store, run_id, work, timings)
    with stage("promote", "quality gate"):
        promoted = steps.promote_step(settings, store, s3=s3, promotion=promotion)
    if promoted["promoted"]:
        with stage("materialize", "latest measurements per patient into the online store (Feast)"):
            steps.materialize_step(settings, cloud=s3 is not None)
    evaluated = store.get_json("evaluate.json")
    return TrainingResult(
        run_id=run_id,
        selected_family=evaluated["selected"],
        model_version=registered["model_version"],
        promoted=promoted["promoted"],
        gate_reason=promoted["reason"],
        published_as=promoted["published_as"],
        selection=evaluated.get("selection", {}),
        calibration=evaluated.get("calibration", {}),
        holdout=evaluated["holdout"],
        cv=cv,
        thresholds=evaluated["thresholds"],
        onnx_parity_max_abs_diff=exported["max_abs_diff"],
        mlflow_run_id=registered["mlflow_run_id"],
        pointer_uri=promoted["pointer"],
        timings_s=timings,
        train_data=DatasetRef(**validated["train"]),
        holdout_data=DatasetRef(**validated["holdout"]),
        validation=validated["validation"],
    )
