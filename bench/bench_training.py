"""Training pipeline on the bundled data: the time of every stage, and the model search on all cores
(the pipeline's way) against the same search on one core (the baseline) and with one process per
family, in the same run. MLflow runs in process (SQLite) and S3 is moto's in-process S3, so only the pipeline's own
work is timed. Ends with one JSON line."""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path
from unittest.mock import patch

import boto3
import numpy as np
from moto import mock_aws

from inference_core.schema import LABEL
from training.data import load_bundled
from training.models import FAMILIES, train_families
from training.pipeline import run_training
from training.settings import TrainingSettings
from training.validation import validate


def main() -> None:
    for key in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        os.environ.pop(key, None)
    os.environ.update(
        {
            "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench",
            "AWS_DEFAULT_REGION": "us-east-1",
            "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",
        }
    )
    tmp = Path(tempfile.mkdtemp(prefix="bench-training-"))
    os.chdir(tmp)
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="artifacts")
        settings = TrainingSettings(
            artifacts_bucket="artifacts",
            MLFLOW_TRACKING_URI=f"sqlite:///{tmp / 'mlflow.db'}",
            work_dir=tmp / "work",
            offline_store=str(tmp / "measurements"),  # s3fs (Feast's S3 reader) is not patched by moto
            feast_registry=str(tmp / "registry.db"),
        )
        t0 = time.perf_counter()
        result = run_training(settings, progress=lambda stage, msg: print(f"  {stage}: {msg}", flush=True), s3=s3)
        total = time.perf_counter() - t0

    train = load_bundled("train")
    valid, report = validate(train.frame)
    X, y = valid[report.features_used], valid[LABEL].to_numpy().astype(int)
    t0 = time.perf_counter()
    train_families(X, y, FAMILIES, n_jobs=1)
    sequential = time.perf_counter() - t0
    t0 = time.perf_counter()
    train_families(X, y, FAMILIES, by_family=True)
    by_family = time.perf_counter() - t0
    parallel = result.timings_s["train"]
    forest = forest_search(X, y, load_bundled("holdout"), report.features_used)

    selected = result.holdout[result.selected_family]
    best_cv = max(result.cv, key=lambda f: result.cv[f]["cv_auc_mean"])  # what "best CV AUC wins" would pick
    print(
        json.dumps(
            {
                "bench": "training",
                "cores": os.cpu_count(),
                "total_s": round(total, 2),
                "stages_s": result.timings_s,
                "selected": result.selected_family,
                "holdout": {
                    f: {k: round(v, 4) for k, v in m.items() if k in ("roc_auc", "brier", "pr_auc")}
                    for f, m in result.holdout.items()
                },
                "selected_roc_auc": round(selected["roc_auc"], 4),
                "selection": {
                    "rule": "one-standard-error, repeated stratified CV",
                    "cv_auc_mean_se": {
                        f: [round(c["cv_auc_mean"], 4), round(c.get("cv_auc_se", 0.0), 4)] for f, c in result.cv.items()
                    },
                    "within_one_se": result.selection.get("within_one_se"),
                    "best_cv_family": best_cv,
                    "best_cv_family_holdout_roc_auc": round(result.holdout[best_cv]["roc_auc"], 4),
                },
                "calibration_selected": {
                    k: round(v, 4) if isinstance(v, float) else v
                    for k, v in result.calibration.get(result.selected_family, {}).items()
                    if k != "calibration"
                },
                "selected_brier": round(selected["brier"], 4),
                "onnx_parity_max_abs_diff": float(np.format_float_scientific(result.onnx_parity_max_abs_diff, 2)),
                "search_parallel_s": round(parallel, 2),
                "search_one_process_per_family_s": round(by_family, 2),
                "baseline": {"search_single_core_s": round(sequential, 2)},
                "ratio": round(sequential / parallel, 2),
                "random_forest_search": forest,
            }
        )
    )


def forest_search(X, y, holdout, features) -> dict:
    """The random forest's search, one core: successive halving over the number of trees (what training runs) vs the
    full grid at 300 trees (what it ran before), then the same repeated CV: time, choice, CV and holdout ROC AUC."""
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import GridSearchCV, StratifiedKFold

    from training import models
    from training.validation import validate

    valid_h, _ = validate(holdout.frame)
    Xh, yh = valid_h[features], valid_h[LABEL].to_numpy().astype(int)
    out = {}
    t0 = time.perf_counter()
    halving = models.train_family("random_forest", X, y, n_jobs=1)
    out["successive_halving"] = {
        "seconds": round(time.perf_counter() - t0, 2),
        "best_params": halving.best_params,
        "cv_auc": round(halving.cv_auc_mean, 4),
        "holdout_roc_auc": round(roc_auc_score(yh, halving.pipeline.predict_proba(Xh)[:, 1]), 4),
    }
    t0 = time.perf_counter()
    cv = StratifiedKFold(n_splits=5, shuffle=True, random_state=42)
    grid = GridSearchCV(models.build_pipeline("random_forest"), models.GRIDS["random_forest"], scoring="roc_auc", cv=cv)
    grid.fit(X, y)
    scores, _, _ = models.repeated_cv(grid.best_estimator_, X, y, 5, 3, 43, 1)
    out["baseline_full_grid"] = {
        "seconds": round(time.perf_counter() - t0, 2),
        "best_params": {k.removeprefix("model__"): v for k, v in grid.best_params_.items()},
        "cv_auc": round(float(np.mean(scores)), 4),
        "holdout_roc_auc": round(roc_auc_score(yh, grid.best_estimator_.predict_proba(Xh)[:, 1]), 4),
    }
    out["speedup"] = round(out["baseline_full_grid"]["seconds"] / out["successive_halving"]["seconds"], 2)
    # the halving's previous range (33 → 99 → 297 trees, until 2026-12-01), same search otherwise
    resource, _, _ = models.HALVING["random_forest"]
    with patch.dict(models.HALVING, random_forest=(resource, 33, 297)):
        t0 = time.perf_counter()
        previous = models.train_family("random_forest", X, y, n_jobs=1)
    out["previous_halving_33_to_297"] = {
        "seconds": round(time.perf_counter() - t0, 2),
        "best_params": previous.best_params,
        "cv_auc": round(previous.cv_auc_mean, 4),
        "holdout_roc_auc": round(roc_auc_score(yh, previous.pipeline.predict_proba(Xh)[:, 1]), 4),
    }
    out["threads_vs_processes"] = threads_vs_processes(X, y)
    out["on_every_core"] = every_core(X, y, out["successive_halving"])
    return out


def every_core(X, y, one_process: dict) -> dict:
    """The forest's search alone on the local target's workers (DR_SEARCH_JOBS=0: a process per core, at most 4)
    against the same search on one process (what runs on AWS Lambda, which has no /dev/shm for joblib's processes),
    alternating, two each, the best of each. Any workers left are stopped before each run: the time includes
    starting them, as an environment's first search does (later ones reuse them while not idle for 300 s). In a
    training run the forest shares the cores with the other two families' searches, which this does not."""
    from joblib.externals.loky import get_reusable_executor

    from training import models
    from training.settings import TrainingSettings

    workers = TrainingSettings(search_jobs=0).search_workers
    times: dict[int, list[float]] = {1: [], workers: []}
    same = True
    for _ in range(2):  # alternating, two each
        for n_jobs in (1, workers):
            get_reusable_executor().shutdown(wait=True)
            t0 = time.perf_counter()
            result = models.train_family("random_forest", X, y, n_jobs=n_jobs)
            times[n_jobs].append(time.perf_counter() - t0)
            same &= result.best_params == one_process["best_params"]
            same &= round(result.cv_auc_mean, 4) == one_process["cv_auc"]
    return {
        "workers": workers,
        "seconds": round(min(times[workers]), 2),
        "same_choice_and_cv": same,
        "baseline_one_process_s": round(min(times[1]), 2),
    }


def threads_vs_processes(X, y) -> dict:
    """The families that search with threads (models.THREADED), each in a fresh process on 2 workers, as a training
    Lambda runs it: with threads (today) vs joblib's processes (before); imports outside the timer on both sides."""
    import subprocess
    import sys

    from training import models

    code = (
        "import sys, time; sys.path[:0] = ['.', 'bench'];"
        "from inference_core.schema import LABEL; from training.data import load_bundled;"
        "from training.validation import validate; from training import models;"
        "valid, report = validate(load_bundled('train').frame);"
        "X, y = valid[report.features_used], valid[LABEL].to_numpy().astype(int);"
        "models.THREADED = models.THREADED if sys.argv[2] == 'threads' else frozenset();"
        "t0 = time.perf_counter(); models.train_family(sys.argv[1], X, y, n_jobs=2);"
        "print(time.perf_counter() - t0)"
    )
    root = Path(__file__).resolve().parents[1]
    out = {}
    for family in sorted(models.THREADED):
        for way in ("threads", "processes"):
            runs = [
                float(
                    subprocess.run(
                        [sys.executable, "-c", code, family, way], cwd=root, capture_output=True, text=True, check=True
                    ).stdout
                )
                for _ in range(3)
            ]
            out[f"{family}_{way}_s"] = round(sorted(runs)[1], 2)
    return out


if __name__ == "__main__":
    main()
