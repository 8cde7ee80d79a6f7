"""The training steps, each a function of (settings, run store, small inputs) → small JSON.

The Step Functions state machine runs each as its own Lambda; `pipeline.run_training` runs them in
order in one process. Bulk data (tables, fitted models, plots) goes through the run store, never through
the steps' inputs and outputs.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from inference_core.schema import LABEL

from .data import LoadedTable, load_bundled, load_table
from .settings import TrainingSettings
from .store import RunStore
from .validation import validate

VALIDATED_TRAIN = "data/validated_train.parquet"
VALIDATED_HOLDOUT = "data/validated_holdout.parquet"
TRAINING_FRAME = "data/training_frame.parquet"


def _load(uri: str | None, split: str, version_id: str | None = None) -> LoadedTable:
    return load_bundled(split) if uri in (None, "", "bundled") else load_table(uri, version_id=version_id)


def validate_step(
    settings: TrainingSettings,
    store: RunStore,
    train_uri: str | None,
    holdout_uri: str | None,
    train_version_id: str | None = None,
) -> dict:
    """Load and validate both datasets; keep the valid rows and the reports in the store."""
    train_table, holdout_table = _load(train_uri, "train", train_version_id), _load(holdout_uri, "holdout")
    from .identity import with_identity

    train_valid, train_report = validate(train_table.frame, train_table.issues, settings.validation)
    train_valid, identity = with_identity(train_valid, train_table.ref)
    holdout_valid, holdout_report = validate(holdout_table.frame, holdout_table.issues, settings.validation)
    features = [f for f in train_report.features_used if f in holdout_report.features_used]
    store.put_frame(VALIDATED_TRAIN, train_valid)
    store.put_frame(VALIDATED_HOLDOUT, holdout_valid)
    store.put_json("validation/train.json", train_report.model_dump())
    store.put_json("validation/holdout.json", holdout_report.model_dump())
    summary = {
        "features": features,
        "train": train_table.ref.model_dump(),
        "holdout": holdout_table.ref.model_dump(),
        "identity": identity,
        "validation": {"train": train_report.summary(), "holdout": holdout_report.summary()},
    }
    store.put_json("validate.json", summary)
    return summary


def feast_config(settings: TrainingSettings, cloud: bool):
    """Where the feature store lives: the data bucket, the artifacts bucket and DynamoDB for a run in a cloud; the
    work folder otherwise (unless the settings say)."""
    from inference_core.feature_layout import MEASUREMENTS_PREFIX

    from .features import FeastConfig

    local = Path(settings.work_dir) / "feature_store"
    return FeastConfig(
        offline_root=settings.offline_store
        or (f"s3://{settings.data_bucket}/{MEASUREMENTS_PREFIX}" if cloud else str(local / "measurements")),
        registry_path=settings.feast_registry
        or (f"s3://{settings.artifacts_bucket}/feast/registry.db" if cloud else str(local / "registry.db")),
        online=settings.online_store,
        online_path=str(local / "online_store.db"),
        table_template=settings.online_table_template,
        region=settings.region,
        dynamodb_endpoint=settings.dynamodb_endpoint,
        s3_endpoint=settings.s3_endpoint,
    )


def features_step(settings: TrainingSettings, store: RunStore, work: Path) -> dict:
    """Feast: the dataset's measurements into the offline store, the definitions applied, and the training set
    built by the point-in-time join of its labels (each gets the latest measurement taken before its diagnosis)."""
    from .features import training_frame
    from .store import S3RunStore

    validated = store.get_json("validate.json")
    features = validated["features"]
    valid = store.get_frame(VALIDATED_TRAIN)
    config = feast_config(settings, cloud=isinstance(store, S3RunStore))
    source = f"train-{validated['train']['sha256'][:16]}"
    frame, report = training_frame(config, valid, features, source)
    store.put_frame(TRAINING_FRAME, frame)
    return {
        "rows": len(frame),
        "features": features,
        "offline_store": config.offline_root,
        "source": source,
        "identity": validated.get("identity", "derived"),
        "rows_from_later_measurements": report["rows_from_later_measurements"],
        "timings_s": {k: report[k] for k in ("feast_apply_s", "feast_historical_s")},
    }


def materialize_step(settings: TrainingSettings, cloud: bool, start: datetime | None = None) -> dict:
    """The latest measurement of every patient measured since `start` (default: all) into the online store."""
    from .features import materialize

    return materialize(feast_config(settings, cloud), start=start)


def train_step(settings: TrainingSettings, store: RunStore, family: str, n_jobs: int = 1) -> dict:
    """One family's cross-validated search; the fitted pipeline and its out-of-fold predictions go to the store."""
    from .models import train_family

    features = store.get_json("validate.json")["features"]
    frame = store.get_frame(TRAINING_FRAME)
    result = train_family(
        family,
        frame[features],
        frame[LABEL].to_numpy().astype(int),
        settings.folds,
        settings.seed,
        n_jobs=n_jobs,
        repeats=settings.cv_repeats,
    )
    store.put_model(f"models/{family}.joblib", result.pipeline)
    summary = result.summary()
    store.put_json(f"models/{family}.json", {**summary, "oof_proba": result.oof_proba, "oof_rows": result.oof_rows})
    return summary


def evaluate_step(settings: TrainingSettings, store: RunStore, families: list[str], work: Path) -> dict:
    """Select by the one-SE rule on repeated-CV AUC; check calibration on out-of-fold predictions (Platt scaling
    kept where it helps); choose thresholds on OOF predictions; measure every family on the holdout with bootstrap
    intervals; plots, importance and the reference profile of the training data."""
    from . import evaluate as ev
    from . import stats
    from .models import FamilyResult, select
    from .profile import reference_profile

    features = store.get_json("validate.json")["features"]
    frame = store.get_frame(TRAINING_FRAME)
    y = frame[LABEL].to_numpy().astype(int)
    holdout = store.get_frame(VALIDATED_HOLDOUT)
    Xh, yh = holdout[features], holdout[LABEL].to_numpy().astype(int)
    results = []
    for family in families:
        doc = store.get_json(f"models/{family}.json")
        results.append(
            FamilyResult(
                family,
                store.get_model(f"models/{family}.joblib"),
                doc["best_params"],
                doc["cv_auc_mean"],
                doc["cv_auc_std"],
                np.asarray(doc["oof_proba"]),
                doc["fit_seconds"],
                doc.get("cv_auc_se", 0.0),
                doc.get("cv_scores", []),
                np.asarray(doc["oof_rows"]) if doc.get("oof_rows") is not None else None,
            )
        )
    chosen = select(results)
    oof = {r.family: r.oof(y) for r in results}  # (labels, probabilities, rows), repeats stacked
    calibration = {
        f: stats.check_calibration(labels, proba, settings.seed, groups=rows)
        for f, (labels, proba, rows) in oof.items()
    }
    per_family = {
        f: ev.choose_thresholds(labels, stats.apply_calibration(calibration[f].calibration, proba))
        for f, (labels, proba, _) in oof.items()
    }
    holdout_proba = {
        r.family: stats.apply_calibration(calibration[r.family].calibration, r.pipeline.predict_proba(Xh)[:, 1])
        for r in results
    }
    thresholds = per_family[chosen.family]
    metrics = {
        r.family: ev.holdout_metrics(yh, holdout_proba[r.family], per_family[r.family].decision) for r in results
    }
    intervals = {
        r.family: {
            k: v.model_dump() for k, v in stats.bootstrap_cis(yh, holdout_proba[r.family], 1000, settings.seed).items()
        }
        for r in results
    }
    proba = holdout_proba[chosen.family]
    importance = ev.feature_importance(chosen.pipeline, Xh, yh, settings.seed)
    for path in ev.save_plots(work / "plots", yh, proba, thresholds.decision, importance, chosen.family):
        store.put_bytes(f"plots/{path.name}", path.read_bytes())
    store.put_json("reference_profile.json", reference_profile(store.get_frame(VALIDATED_TRAIN), features))
    best = max(results, key=lambda r: r.cv_auc_mean)
    summary = {
        "selected": chosen.family,
        "selection": {
            "rule": "one-standard-error",
            "best_family": best.family,
            "best_cv_auc": best.cv_auc_mean,
            "best_cv_auc_se": best.cv_auc_se,
            "within_one_se": [r.family for r in results if r.cv_auc_mean >= best.cv_auc_mean - best.cv_auc_se],
            "folds": settings.folds,
            "repeats": settings.cv_repeats,
        },
        "thresholds": thresholds.model_dump(),
        "holdout": metrics,
        "holdout_ci": intervals,
        "calibration": {f: c.model_dump() for f, c in calibration.items()},
        "cv": {r.family: r.summary() for r in results},
        "importance": importance,
    }
    store.put_json("evaluate.json", summary)
    return {k: summary[k] for k in ("selected", "thresholds")} | {
        "holdout": metrics[chosen.family],
        "calibrated": calibration[chosen.family].applied,
    }


def export_step(settings: TrainingSettings, store: RunStore) -> dict:
    """ONNX of the selected pipeline, with the parity check on the holdout (fails loudly beyond 1e-4)."""
    from .export import export_with_parity

    selected = store.get_json("evaluate.json")["selected"]
    features = store.get_json("validate.json")["features"]
    holdout = store.get_frame(VALIDATED_HOLDOUT)
    onnx_bytes, parity = export_with_parity(store.get_model(f"models/{selected}.joblib"), holdout[features])
    store.put_bytes("model.onnx", onnx_bytes)
    store.put_json("export.json", parity)
    return {"family": selected, **{k: parity[k] for k in ("max_abs_diff", "sha256", "bytes")}}


def _card(store: RunStore, version: str | None) -> str:
    from .model_card import Thresholds, model_card

    validated, evaluated = store.get_json("validate.json"), store.get_json("evaluate.json")
    selected = evaluated["selected"]
    return model_card(
        family=selected,
        version=version,
        metrics=evaluated["holdout"][selected],
        cv=evaluated["cv"][selected],
        thresholds=Thresholds(**evaluated["thresholds"]),
        features=validated["features"],
        train_ref=validated["train"],
        holdout_ref=validated["holdout"],
        importance=evaluated["importance"],
        all_families=[
            {**cv, "holdout": evaluated["holdout"][f], "holdout_ci": evaluated.get("holdout_ci", {}).get(f, {})}
            for f, cv in evaluated["cv"].items()
        ],
        selection=evaluated.get("selection"),
        calibration=(evaluated.get("calibration") or {}).get(selected),
        identity=validated.get("identity"),
    )


def register_step(
    settings: TrainingSettings, store: RunStore, run_id: str, work: Path, timings: dict[str, float] | None = None
) -> dict:
    """MLflow: parent run + nested family runs, datasets, plots, card; the ONNX model registered as
    `diabetes-risk` with alias `challenger`."""
    from . import tracking

    if store.exists("register.json"):  # a retry after success: never a second run and version
        return store.get_json("register.json")
    previous = tracking.registered_for(settings, run_id)
    if previous:  # registered, but failed before recording it here
        store.put_json("register.json", previous)
        return previous
    validated, evaluated = store.get_json("validate.json"), store.get_json("evaluate.json")
    plots = []
    for name in ("roc", "pr", "calibration", "confusion_matrix", "feature_importance"):
        path = work / "plots" / f"{name}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(store.get_bytes(f"plots/{name}.png"))
        plots.append(path)
    mlflow_run_id, version = tracking.log_and_register(
        settings,
        pipeline_run_id=run_id,
        validated=validated,
        evaluated=evaluated,
        frames={"training": store.get_frame(VALIDATED_TRAIN), "holdout": store.get_frame(VALIDATED_HOLDOUT)},
        reports={
            "train": store.get_json("validation/train.json"),
            "holdout": store.get_json("validation/holdout.json"),
        },
        plots=plots,
        profile=store.get_json("reference_profile.json"),
        onnx_bytes=store.get_bytes("model.onnx"),
        parity=store.get_json("export.json"),
        model_card=_card(store, None),
        work=work,
        timings=timings or {},
    )
    result = {"mlflow_run_id": mlflow_run_id, "model_version": version}
    store.put_json("register.json", result)
    return result


def promote_step(settings: TrainingSettings, store: RunStore, s3=None, promotion: str | None = None) -> dict:
    """The quality gate (paired with the serving champion on the same holdout); on a pass, publish the serving
    files and the pointer: as champion (`immediate`) or as challenger (`shadow`, `canary`)."""
    from . import tracking

    promotion = promotion or settings.promotion
    validated, evaluated = store.get_json("validate.json"), store.get_json("evaluate.json")
    registered = store.get_json("register.json")
    selected, version = evaluated["selected"], registered["model_version"]
    check = (evaluated.get("calibration") or {}).get(selected) or {}
    decision, pointer = tracking.gate_and_promote(
        settings,
        run_id=registered["mlflow_run_id"],
        version=version,
        candidate_auc=evaluated["holdout"][selected]["roc_auc"],
        onnx_bytes=store.get_bytes("model.onnx"),
        profile=store.get_json("reference_profile.json"),
        model_card=_card(store, version),
        fields={
            "family": selected,
            "features": validated["features"],
            "thresholds": evaluated["thresholds"],
            "metrics": evaluated["holdout"][selected],
            "mlflow_run_id": registered["mlflow_run_id"],
            "training_data_uri": validated["train"]["uri"],
            "training_data_sha256": validated["train"]["sha256"],
            "trained_at": datetime.now(UTC).isoformat(),
            "explainer": store.get_json("export.json").get("explainer"),
            "calibration": check.get("calibration") if check.get("applied") else None,
        },
        holdout=store.get_frame(VALIDATED_HOLDOUT),
        label=LABEL,
        promotion=promotion,
        s3=s3,
    )
    candidate = evaluated["holdout"][selected]
    serving = pointer.metrics if pointer else (decision.champion_metrics or {})
    published_as = None
    if pointer is not None:
        published_as = "champion" if pointer.model_version == version else "challenger"
    result = {
        "promoted": decision.promoted,
        "published_as": published_as,
        "promotion": promotion,
        "reason": decision.reason,
        "model_version": version,
        "comparison": decision.comparison,
        "pointer": f"s3://{settings.artifacts_bucket}/serving/champion.json" if pointer else None,
        # model quality over time (EMF metrics of the promote function): the champion after this run's gate
        "quality": {
            "CandidateRocAuc": candidate.get("roc_auc"),
            "CandidateBrier": candidate.get("brier"),
            "ChampionRocAuc": serving.get("roc_auc"),
            "ChampionBrier": serving.get("brier"),
        },
    }
    store.put_json("promote.json", result)
    return result


def record_failure_step(store: RunStore, failed_step: str, error: dict[str, Any]) -> dict:
    """What failed and why, kept with the run; the champion is never touched on this path."""
    cause = error.get("Cause") or ""
    message = cause
    try:
        doc = json.loads(cause)
        message = f"{doc.get('errorType', '')}: {doc.get('errorMessage', cause)}".strip(": ")
    except (ValueError, TypeError, AttributeError):
        pass
    record = {
        "failed_step": failed_step,
        "error": error.get("Error", "Unknown"),
        "message": message,
        "at": datetime.now(UTC).isoformat(),
    }
    store.put_json("failure.json", record)
    return record
