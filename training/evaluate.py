"""Holdout evaluation: metrics, operating thresholds, plots and a model card."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display on servers, CI or Lambda
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from sklearn.calibration import calibration_curve
from sklearn.inspection import permutation_importance
from sklearn.metrics import (
    ConfusionMatrixDisplay,
    accuracy_score,
    average_precision_score,
    brier_score_loss,
    confusion_matrix,
    log_loss,
    precision_recall_curve,
    roc_auc_score,
    roc_curve,
)

from .model_card import Thresholds, model_card  # noqa: F401 - re-exported: callers import them from here


def choose_thresholds(y: np.ndarray, proba: np.ndarray, target: float = 0.90) -> Thresholds:
    fpr, tpr, cuts = roc_curve(y, proba)
    finite = np.isfinite(cuts)
    fpr, tpr, cuts = fpr[finite], tpr[finite], cuts[finite]
    decision = float(cuts[np.argmax(tpr - fpr)])
    low = float(cuts[np.argmax(tpr >= target)]) if (tpr >= target).any() else float(cuts[-1])
    spec_ok = np.flatnonzero(fpr <= 1 - target)
    high = float(cuts[spec_ok[-1]]) if len(spec_ok) else float(cuts[0])
    low, high = min(low, decision), max(high, decision)
    return Thresholds(decision=decision, low=low, high=high)


def holdout_metrics(y: np.ndarray, proba: np.ndarray, threshold: float) -> dict[str, float]:
    predicted = (proba >= threshold).astype(int)
    tn, fp, fn, tp = confusion_matrix(y, predicted, labels=[0, 1]).ravel()
    return {
        "roc_auc": float(roc_auc_score(y, proba)),
        "pr_auc": float(average_precision_score(y, proba)),
        "brier": float(brier_score_loss(y, proba)),
        "log_loss": float(log_loss(y, np.clip(proba, 1e-7, 1 - 1e-7), labels=[0, 1])),
        "accuracy": float(accuracy_score(y, predicted)),
        "sensitivity": float(tp / (tp + fn)) if tp + fn else 0.0,
        "specificity": float(tn / (tn + fp)) if tn + fp else 0.0,
    }


def feature_importance(pipeline, X: pd.DataFrame, y: np.ndarray, seed: int = 42) -> dict[str, float]:
    """Permutation importance on the holdout (drop in ROC AUC): comparable across families."""
    result = permutation_importance(pipeline, X, y, scoring="roc_auc", n_repeats=10, random_state=seed, n_jobs=1)
    return {col: float(v) for col, v in zip(X.columns, result.importances_mean, strict=True)}


def save_plots(
    out_dir: Path,
    y: np.ndarray,
    proba: np.ndarray,
    threshold: float,
    importance: dict[str, float],
    title: str,
) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []

    def save(fig, name: str) -> None:
        path = out_dir / name
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)

    fpr, tpr, _ = roc_curve(y, proba)
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot(fpr, tpr, label=f"AUC {roc_auc_score(y, proba):.3f}")
    ax.plot([0, 1], [0, 1], "--", color="grey")
    ax.set(xlabel="1 - specificity", ylabel="sensitivity", title=f"ROC — {title}")
    ax.legend(loc="lower right")
    save(fig, "roc.png")

    precision, recall, _ = precision_recall_curve(y, proba)
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot(recall, precision, label=f"AP {average_precision_score(y, proba):.3f}")
    ax.axhline(y.mean(), ls="--", color="grey", label="prevalence")
    ax.set(xlabel="recall (sensitivity)", ylabel="precision", title=f"Precision-recall — {title}")
    ax.legend(loc="lower left")
    save(fig, "pr.png")

    observed, predicted = calibration_curve(y, proba, n_bins=10, strategy="quantile")
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot(predicted, observed, "o-", label="model")
    ax.plot([0, 1], [0, 1], "--", color="grey", label="perfect")
    ax.set(xlabel="predicted risk", ylabel="observed rate", title=f"Calibration — {title}")
    ax.legend(loc="upper left")
    save(fig, "calibration.png")

    fig, ax = plt.subplots(figsize=(5, 4.5))
    ConfusionMatrixDisplay.from_predictions(
        y, (proba >= threshold).astype(int), ax=ax, colorbar=False, display_labels=["no diabetes", "diabetes"]
    )
    ax.set_title(f"Confusion at {threshold:.2f} — {title}")
    save(fig, "confusion_matrix.png")

    order = sorted(importance, key=importance.get)
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.barh(order, [importance[k] for k in order])
    ax.set(xlabel="drop in ROC AUC when permuted", title=f"Feature importance — {title}")
    save(fig, "feature_importance.png")
    return paths
