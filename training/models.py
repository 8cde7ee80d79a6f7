"""The three model families, each a full scikit-learn Pipeline (imputation and scaling inside, so the
exported model carries them and serving cannot skew from training), tuned by cross-validated search."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from sklearn.base import clone
from sklearn.ensemble import RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, StratifiedKFold, cross_val_predict
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from xgboost import XGBClassifier

FAMILIES = ("logistic_regression", "random_forest", "xgboost")
# Simpler first: on a near tie in cross-validated AUC the simpler, better calibrated model wins.
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
    oof_proba: np.ndarray = field(repr=False)
    fit_seconds: float = 0.0

    def summary(self) -> dict[str, Any]:
        return {
            "family": self.family,
            "best_params": self.best_params,
            "cv_auc_mean": self.cv_auc_mean,
            "cv_auc_std": self.cv_auc_std,
            "fit_seconds": self.fit_seconds,
        }


def train_family(
    family: str, X: pd.DataFrame, y: np.ndarray, folds: int = 5, seed: int = 42, n_jobs: int = 1
) -> FamilyResult:
    """Grid search with stratified k-fold ROC AUC, refit on all rows, and out-of-fold probabilities
    of the best configuration (used to choose thresholds without touching the holdout)."""
    started = time.perf_counter()
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    search = GridSearchCV(
        build_pipeline(family, seed), GRIDS[family], scoring="roc_auc", cv=cv, n_jobs=n_jobs, refit=True
    )
    search.fit(X, y)
    best = search.best_index_
    oof = cross_val_predict(clone(search.best_estimator_), X, y, cv=cv, method="predict_proba", n_jobs=n_jobs)[:, 1]
    return FamilyResult(
        family=family,
        pipeline=search.best_estimator_,
        best_params={k.removeprefix("model__"): v for k, v in search.best_params_.items()},
        cv_auc_mean=float(search.cv_results_["mean_test_score"][best]),
        cv_auc_std=float(search.cv_results_["std_test_score"][best]),
        oof_proba=oof,
        fit_seconds=time.perf_counter() - started,
    )


def train_families(
    X: pd.DataFrame,
    y: np.ndarray,
    families: tuple[str, ...] = FAMILIES,
    folds: int = 5,
    seed: int = 42,
    n_jobs: int | None = None,
    by_family: bool = False,
) -> list[FamilyResult]:
    """All families, using every core. By default the cores share each search's fits (grid points x
    folds) and the families run one after another: with families of very unequal cost (the forest is
    most of the work) that beats one process per family, as bench/bench_training.py measures. On AWS the
    state machine runs the families as parallel Lambda invocations instead."""
    n_jobs = n_jobs or os.cpu_count() or 1
    if by_family:
        workers = min(len(families), n_jobs)
        return Parallel(n_jobs=workers)(delayed(train_family)(f, X, y, folds, seed) for f in families)
    return [train_family(f, X, y, folds, seed, n_jobs=n_jobs) for f in families]


def select(results: list[FamilyResult], tie: float = 0.005) -> FamilyResult:
    """Best cross-validated AUC (never the holdout: it stays an unbiased test); near ties go to the
    simpler family."""
    best_auc = max(r.cv_auc_mean for r in results)
    contenders = [r for r in results if r.cv_auc_mean >= best_auc - tie]
    return min(contenders, key=lambda r: SIMPLICITY.get(r.family, 99))
