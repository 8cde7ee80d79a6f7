"""The three model families, each a full scikit-learn Pipeline (imputation and scaling inside, so the
exported model carries them and serving cannot skew from training), tuned by cross-validated search."""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from joblib import Parallel, delayed, parallel_config
from sklearn.base import clone
from sklearn.ensemble import RandomForestClassifier
from sklearn.experimental import enable_halving_search_cv  # noqa: F401 - makes HalvingGridSearchCV importable
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import GridSearchCV, HalvingGridSearchCV, RepeatedStratifiedKFold, StratifiedKFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from xgboost import XGBClassifier

from .families import FAMILIES  # one list, importable without scikit-learn

# Simpler first: the one-standard-error rule picks the simplest family whose CV AUC is within one SE of the best.
SIMPLICITY = {family: rank for rank, family in enumerate(FAMILIES)}

GRIDS: dict[str, dict[str, list[Any]]] = {
    "logistic_regression": {"model__C": [0.01, 0.1, 1.0, 10.0]},
    "random_forest": {
        "model__max_depth": [4, 8, None],
        "model__min_samples_leaf": [1, 5],
        "model__max_features": ["sqrt", 0.5],
    },
    "xgboost": {
        "model__max_depth": [2, 3],
        "model__learning_rate": [0.03, 0.1],
        "model__n_estimators": [100, 300],
    },
}


# family -> (the parameter successive halving grows, its smallest and largest value): 27, 81, 243 trees. The CV curve
# is flat past ≈ 250 trees on the bundled data: the previous 33 → 99 → 297 chose the same configuration with the same
# holdout ROC AUC, at ≈ 1.2 times the fits (bench/bench_training.py runs both: `previous_halving_33_to_297`).
HALVING: dict[str, tuple[str, int, int]] = {"random_forest": ("model__n_estimators", 27, 243)}


# Families whose fits are short run a search's fits as threads: no worker processes to start, each importing
# scikit-learn again, which is most of their search in a fresh Lambda process (bench/bench_training.py:
# `threads_vs_processes`). The forest's many small trees hold the GIL between them (by hand: 7.5 s with processes,
# 12.7 s with threads, 2 cores), so it keeps joblib's processes.
THREADED = frozenset({"logistic_regression", "xgboost"})


def build_pipeline(family: str, seed: int = 42) -> Pipeline:
    impute = ("impute", SimpleImputer(strategy="median"))
    if family == "logistic_regression":
        return Pipeline(
            [
                impute,
                ("scale", StandardScaler()),
                ("model", LogisticRegression(max_iter=2000, random_state=seed)),
            ]
        )
    if family == "random_forest":
        return Pipeline([impute, ("model", RandomForestClassifier(n_estimators=300, random_state=seed, n_jobs=1))])
    if family == "xgboost":
        return Pipeline(
            [
                impute,
                (
                    "model",
                    XGBClassifier(
                        subsample=0.8,
                        colsample_bytree=0.8,
                        tree_method="hist",
                        eval_metric="logloss",
                        random_state=seed,
                        n_jobs=1,
                    ),
                ),
            ]
        )
    raise ValueError(f"unknown model family {family!r}; choose from {', '.join(FAMILIES)}")


@dataclass
class FamilyResult:
    family: str
    pipeline: Pipeline
    best_params: dict[str, Any]
    cv_auc_mean: float
    cv_auc_std: float
    oof_proba: np.ndarray = field(repr=False)  # every out-of-fold prediction, the repeats one after another
    fit_seconds: float = 0.0
    cv_auc_se: float = 0.0
    cv_scores: list[float] = field(default_factory=list, repr=False)
    oof_rows: np.ndarray | None = field(default=None, repr=False)  # the training row of each oof_proba entry

    def oof(self, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(labels, probabilities, rows) of the out-of-fold predictions: one per row and repeat, each from a single
        fitted model, as serving will see them (an average over repeats would be smoother than any one model)."""
        rows = np.arange(len(self.oof_proba)) if self.oof_rows is None else np.asarray(self.oof_rows)
        return np.asarray(y)[rows], np.asarray(self.oof_proba), rows

    def summary(self) -> dict[str, Any]:
        return {
            "family": self.family,
            "best_params": self.best_params,
            "cv_auc_mean": self.cv_auc_mean,
            "cv_auc_std": self.cv_auc_std,
            "cv_auc_se": self.cv_auc_se,
            "cv_scores": self.cv_scores,
            "fit_seconds": self.fit_seconds,
        }


def train_family(
    family: str, X: pd.DataFrame, y: np.ndarray, folds: int = 5, seed: int = 42, n_jobs: int = 1, repeats: int = 3
) -> FamilyResult:
    """Grid search with stratified k-fold ROC AUC and refit on all rows; then the chosen configuration is
    scored again by repeated stratified k-fold (`repeats` x `folds` fits on fresh splits), which gives the
    mean and standard error the families are compared on, and out-of-fold probabilities (averaged over the
    repeats) to choose thresholds and calibration without touching the holdout."""
    started = time.perf_counter()
    with parallel_config(backend="threading") if family in THREADED else contextlib.nullcontext():
        search, scores, oof, rows = _search(family, X, y, folds, seed, n_jobs, repeats)
    return FamilyResult(
        family=family,
        pipeline=search.best_estimator_,
        best_params={k.removeprefix("model__"): v for k, v in search.best_params_.items()},
        cv_auc_mean=float(np.mean(scores)),
        cv_auc_std=float(np.std(scores, ddof=1)) if len(scores) > 1 else 0.0,
        # SE as in the one-SE rule (ESL 7.10): the spread of fold scores over sqrt(folds per repeat). Repeats of
        # the same rows are not independent, so dividing by sqrt(all fits) would claim a precision there is not.
        cv_auc_se=float(np.std(scores, ddof=1) / np.sqrt(folds)) if len(scores) > 1 else 0.0,
        cv_scores=[float(v) for v in scores],
        oof_proba=oof,
        oof_rows=rows,
        fit_seconds=time.perf_counter() - started,
    )


def _search(family: str, X: pd.DataFrame, y: np.ndarray, folds: int, seed: int, n_jobs: int, repeats: int):
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    if family in HALVING:
        # Successive halving: every configuration is scored with few trees, the best third goes on with three times
        # as many, up to the full forest. Measured on the bundled data (bench/bench_training.py): the same choice as
        # the full grid at a third of the fits' cost.
        resource, smallest, largest = HALVING[family]
        search = HalvingGridSearchCV(
            build_pipeline(family, seed),
            GRIDS[family],
            scoring="roc_auc",
            cv=cv,
            n_jobs=n_jobs,
            refit=True,
            resource=resource,
            min_resources=smallest,
            max_resources=largest,
            factor=3,
            random_state=seed,
        )
    else:
        search = GridSearchCV(
            build_pipeline(family, seed), GRIDS[family], scoring="roc_auc", cv=cv, n_jobs=n_jobs, refit=True
        )
    search.fit(X, y)
    scores, oof, rows = repeated_cv(search.best_estimator_, X, y, folds, repeats, seed + 1, n_jobs)
    return search, scores, oof, rows


def _fold(estimator, X: pd.DataFrame, y: np.ndarray, train: np.ndarray, test: np.ndarray) -> tuple[float, np.ndarray]:
    fitted = clone(estimator).fit(X.iloc[train], y[train])
    proba = fitted.predict_proba(X.iloc[test])[:, 1]
    return float(roc_auc_score(y[test], proba)), proba


def repeated_cv(
    estimator, X: pd.DataFrame, y: np.ndarray, folds: int, repeats: int, seed: int, n_jobs: int = 1
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-fold ROC AUC over `repeats` x `folds` fits, and every out-of-fold prediction with its training row
    (each row is out of fold exactly once per repeat)."""
    splits = list(RepeatedStratifiedKFold(n_splits=folds, n_repeats=repeats, random_state=seed).split(X, y))
    results = Parallel(n_jobs=n_jobs)(delayed(_fold)(estimator, X, y, tr, te) for tr, te in splits)
    rows = np.concatenate([test for _, test in splits])
    proba = np.concatenate([p for _, p in results])
    return np.asarray([auc for auc, _ in results]), proba, rows


def train_families(
    X: pd.DataFrame,
    y: np.ndarray,
    families: tuple[str, ...] = FAMILIES,
    folds: int = 5,
    seed: int = 42,
    n_jobs: int | None = None,
    by_family: bool = False,
    repeats: int = 3,
) -> list[FamilyResult]:
    """All families, using every core. By default the cores share each search's fits (grid points x
    folds) and the families run one after another: with families of very unequal cost (the forest is
    most of the work) that beats one process per family, as bench/bench_training.py measures. On AWS the
    state machine runs the families as parallel Lambda invocations instead."""
    n_jobs = n_jobs or os.cpu_count() or 1
    if by_family:
        workers = min(len(families), n_jobs)
        return Parallel(n_jobs=workers)(delayed(train_family)(f, X, y, folds, seed, 1, repeats) for f in families)
    return [train_family(f, X, y, folds, seed, n_jobs=n_jobs, repeats=repeats) for f in families]


def select(results: list[FamilyResult]) -> FamilyResult:
    """The one-standard-error rule: among the families whose repeated-CV AUC is within one SE of the best
    family's mean, the simplest (never the holdout: it stays an unbiased test)."""
    best = max(results, key=lambda r: r.cv_auc_mean)
    contenders = [r for r in results if r.cv_auc_mean >= best.cv_auc_mean - best.cv_auc_se]
    return min(contenders, key=lambda r: SIMPLICITY.get(r.family, 99))
