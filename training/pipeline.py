"""The whole training pipeline in one process: the same steps the Step Functions state machine runs,
in order, with a progress callback and the time of every stage."""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel

from inference_core.schema import LABEL

from .data import DatasetRef, LoadedTable, load_bundled, load_table
from .settings import TrainingSettings
from .validation import ValidationReport, validate

STAGES = ("load", "validate", "features", "train", "evaluate", "export", "register", "promote")
Progress = Callable[[str, str], None]  # (stage, message)


class TrainingResult(BaseModel):
    selected_family: str
    model_version: str | None
    promoted: bool
    gate_reason: str
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


def load(uri: str | None, split: str) -> LoadedTable:
    return load_bundled(split) if uri in (None, "", "bundled") else load_table(uri)


def run_training(
    settings: TrainingSettings,
    train_uri: str | None = None,
    holdout_uri: str | None = None,
    progress: Progress = _noop,
    families: tuple[str, ...] | None = None,
    use_mlflow: bool = True,
    s3=None,
) -> TrainingResult:
    """Load → validate → features (Feast) → train → evaluate & select → export ONNX → register → promote."""
    from . import evaluate as ev
    from .export import export_with_parity
    from .features import FeastLocations, training_frame
    from .models import FAMILIES, select, train_families
    from .profile import reference_profile

    families = families or FAMILIES
    timings: dict[str, float] = {}

    @contextmanager
    def stage(name: str, message: str):
        progress(name, message)
        t0 = time.perf_counter()
        yield
        timings[name] = round(time.perf_counter() - t0, 3)

    work = Path(tempfile.mkdtemp(prefix="train-", dir=_ensure(settings.work_dir)))

    with stage("load", "loading training and holdout data"):
        train_table, holdout_table = load(train_uri, "train"), load(holdout_uri, "holdout")
    with stage("validate", "validating rows (pandera)"):
        train_valid, train_report = validate(train_table.frame, train_table.issues, settings.validation)
        holdout_valid, holdout_report = validate(holdout_table.frame, holdout_table.issues, settings.validation)
        features = [f for f in train_report.features_used if f in holdout_report.features_used]
        _write_json(work / "validation_train.json", train_report.model_dump())
        _write_json(work / "validation_holdout.json", holdout_report.model_dump())
    with stage("features", "registering and retrieving features (Feast)"):
        source = settings.feature_source or str(work / "feast" / "patients.parquet")
        locations = FeastLocations(
            source_uri=source,
            registry_path=settings.feast_registry or str(work / "feast" / "registry.db"),
            online_path=str(work / "feast" / "online_store.db"),
            s3_endpoint=settings.s3_endpoint,
        )
        train_frame, feast_timings = training_frame(train_valid, features, locations)
        timings.update({k: round(v, 3) for k, v in feast_timings.items()})
    X, y = train_frame[features], train_frame[LABEL].to_numpy().astype(int)
    Xh, yh = holdout_valid[features], holdout_valid[LABEL].to_numpy().astype(int)

    with stage("train", f"cross-validated search: {', '.join(families)}"):
        results = train_families(X, y, families, folds=settings.folds, seed=settings.seed)
    with stage("evaluate", "holdout metrics, thresholds, plots, model card"):
        chosen = select(results)
        per_family = {r.family: ev.choose_thresholds(y, r.oof_proba) for r in results}
        thresholds = per_family[chosen.family]
        holdout = {
            r.family: ev.holdout_metrics(yh, r.pipeline.predict_proba(Xh)[:, 1], per_family[r.family].decision)
            for r in results
        }
        proba = chosen.pipeline.predict_proba(Xh)[:, 1]
        importance = ev.feature_importance(chosen.pipeline, Xh, yh, settings.seed)
        plots = ev.save_plots(work / "plots", yh, proba, thresholds.decision, importance, chosen.family)
        profile = reference_profile(train_valid, features)
        summaries = [{**r.summary(), "holdout": holdout[r.family]} for r in results]
    with stage("export", "exporting the selected pipeline to ONNX (parity check on the holdout)"):
        onnx_bytes, parity = export_with_parity(chosen.pipeline, Xh)
        (work / "model.onnx").write_bytes(onnx_bytes)

    def card(version: str | None) -> str:
        return ev.model_card(
            family=chosen.family,
            version=version,
            metrics=holdout[chosen.family],
            cv=chosen.summary(),
            thresholds=thresholds,
            features=features,
            train_ref=train_table.ref.model_dump(),
            holdout_ref=holdout_table.ref.model_dump(),
            importance=importance,
            all_families=summaries,
        )

    version = run_id = pointer_uri = None
    promoted, reason = False, "not registered (MLflow disabled)"
    if use_mlflow:
        from . import tracking

        with stage("register", f"logging to MLflow and registering {chosen.family}"):
            run_id, version = tracking.log_and_register(
                settings,
                families=results,
                chosen=chosen,
                holdout=holdout,
                thresholds=thresholds,
                features=features,
                train=train_table,
                holdout_table=holdout_table,
                train_report=train_report,
                holdout_report=holdout_report,
                plots=plots,
                profile=profile,
                onnx_bytes=onnx_bytes,
                parity=parity,
                model_card=card(None),
                work=work,
                importance=importance,
                timings=timings,
            )
        with stage("promote", "quality gate"):
            decision, pointer = tracking.gate_and_promote(
                settings,
                run_id=run_id,
                version=version,
                candidate_auc=holdout[chosen.family]["roc_auc"],
                onnx_bytes=onnx_bytes,
                profile=profile,
                model_card=card(version),
                fields={
                    "family": chosen.family,
                    "features": features,
                    "thresholds": thresholds.model_dump(),
                    "metrics": holdout[chosen.family],
                    "mlflow_run_id": run_id,
                    "training_data_uri": train_table.ref.uri,
                    "training_data_sha256": train_table.ref.sha256,
                    "trained_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                },
                s3=s3,
            )
            promoted, reason = decision.promoted, decision.reason
            pointer_uri = f"s3://{settings.artifacts_bucket}/serving/champion.json" if pointer else None
    (work / "model_card.md").write_text(card(version))
    return TrainingResult(
        selected_family=chosen.family,
        model_version=version,
        promoted=promoted,
        gate_reason=reason,
        holdout=holdout,
        cv={r.family: r.summary() for r in results},
        thresholds=thresholds.model_dump(),
        onnx_parity_max_abs_diff=parity["max_abs_diff"],
        mlflow_run_id=run_id,
        pointer_uri=pointer_uri,
        timings_s=timings,
        train_data=train_table.ref,
        holdout_data=holdout_table.ref,
        validation={"train": train_report.summary(), "holdout": holdout_report.summary()},
    )


def _ensure(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def _write_json(path: Path, doc: Any) -> None:
    path.write_text(json.dumps(doc, indent=2, default=_json_default))


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(type(value).__name__)


__all__ = ["STAGES", "TrainingResult", "ValidationReport", "run_training"]
