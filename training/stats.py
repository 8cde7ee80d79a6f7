"""The statistics behind model selection and the promotion gate: bootstrap confidence intervals, a paired
bootstrap test of two models on the same holdout, and Platt calibration chosen only where it helps.

With a few hundred rows the three families differ by less than their noise, so every comparison here
reports its uncertainty instead of a single number."""

from __future__ import annotations

import math

import numpy as np
from pydantic import BaseModel

from inference_core.contracts import Calibration
from inference_core.scoring import calibrate


def weighted_auc(y: np.ndarray, score: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """ROC AUC of one score under many row weightings at once (rows of `weights`, shape [B, n]): a bootstrap
    resample is a weighting by how often each row was drawn. Ties count one half, as in Mann-Whitney U."""
    y = np.asarray(y).astype(bool)
    weights = np.atleast_2d(np.asarray(weights, dtype=np.float64))
    order = np.argsort(score, kind="mergesort")
    s, yy, w = np.asarray(score)[order], y[order], weights[:, order]
    groups = np.concatenate(([0], np.cumsum(s[1:] != s[:-1])))  # rows with equal scores share a group
    n_groups = int(groups[-1]) + 1 if len(groups) else 0
    pos = np.zeros((w.shape[0], n_groups))
    neg = np.zeros((w.shape[0], n_groups))
    np.add.at(pos.T, groups[yy], w[:, yy].T)
    np.add.at(neg.T, groups[~yy], w[:, ~yy].T)
    neg_below = np.cumsum(neg, axis=1) - neg
    total = pos.sum(axis=1) * neg.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (pos * (neg_below + 0.5 * neg)).sum(axis=1) / total


def bootstrap_weights(n: int, resamples: int, seed: int, y: np.ndarray | None = None) -> np.ndarray:
    """How often each of n rows is drawn in each resample ([resamples, n]). With `y`, stratified: each class
    is resampled within itself, so every resample has both classes and the same prevalence."""
    rng = np.random.default_rng(seed)
    if y is None:
        return rng.multinomial(n, np.full(n, 1.0 / n), size=resamples).astype(np.float64)
    y = np.asarray(y).astype(bool)
    out = np.zeros((resamples, n))
    for cls in (True, False):
        idx = np.flatnonzero(y == cls)
        if len(idx):
            out[:, idx] = rng.multinomial(len(idx), np.full(len(idx), 1.0 / len(idx)), size=resamples)
    return out


class Interval(BaseModel):
    estimate: float
    low: float
    high: float
    level: float = 0.95


def bootstrap_cis(
    y: np.ndarray, proba: np.ndarray, resamples: int = 1000, seed: int = 42, level: float = 0.95
) -> dict[str, Interval]:
    """Percentile bootstrap intervals (stratified) for ROC AUC and Brier score on one holdout."""
    y, proba = np.asarray(y).astype(int), np.asarray(proba, dtype=np.float64)
    w = bootstrap_weights(len(y), resamples, seed, y)
    auc = weighted_auc(y, proba, w)
    brier = (w * (proba - y) ** 2).sum(axis=1) / w.sum(axis=1)
    alpha = (1 - level) / 2
    full = np.ones((1, len(y)))
    out = {}
    for name, values, point in (
        ("roc_auc", auc, float(weighted_auc(y, proba, full)[0])),
        ("brier", brier, float(np.mean((proba - y) ** 2))),
    ):
        low, high = np.quantile(values, [alpha, 1 - alpha])
        out[name] = Interval(estimate=point, low=float(low), high=float(high), level=level)
    return out


class PairedComparison(BaseModel):
    """Candidate minus champion on the same holdout rows, resampled together."""

    auc_candidate: float
    auc_champion: float
    delta: float
    low: float
    high: float
    p_worse: float  # one-sided p-value of "the candidate's AUC is below the champion's"
    resamples: int
    rows: int
    level: float = 0.90  # of [low, high]


def paired_bootstrap(
    y: np.ndarray,
    candidate: np.ndarray,
    champion: np.ndarray,
    resamples: int = 2000,
    seed: int = 42,
    alpha: float = 0.05,
) -> PairedComparison:
    """Paired bootstrap of the ROC AUC difference: each resample draws the same rows for both models, so what
    the two share (the hard patients) cancels and only their difference is tested. The interval is the
    (1 - 2 alpha) one, the two-sided twin of a one-sided test at alpha."""
    y = np.asarray(y).astype(int)
    if len(candidate) != len(y) or len(champion) != len(y):
        raise ValueError("candidate, champion and labels must describe the same holdout rows")
    w = bootstrap_weights(len(y), resamples, seed, y)
    delta = weighted_auc(y, candidate, w) - weighted_auc(y, champion, w)
    full = np.ones((1, len(y)))
    a_cand, a_champ = float(weighted_auc(y, candidate, full)[0]), float(weighted_auc(y, champion, full)[0])
    low, high = np.quantile(delta, [alpha, 1 - alpha])
    # one-sided p-value of "the candidate is worse": the share of resamples where it is not (+1 smoothing); small
    # means nearly every resample has the candidate below the champion
    p_worse = float((np.sum(delta >= 0) + 1) / (resamples + 1))
    return PairedComparison(
        auc_candidate=a_cand,
        auc_champion=a_champ,
        delta=a_cand - a_champ,
        low=float(low),
        high=float(high),
        p_worse=p_worse,
        resamples=resamples,
        rows=len(y),
        level=1 - 2 * alpha,
    )


def logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=np.float64), 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def apply_calibration(calibration: Calibration | None, p: np.ndarray) -> np.ndarray:
    """Serving's own formula (inference_core.scoring.calibrate), so training measures what serving will answer."""
    return calibrate(calibration, np.asarray(p, dtype=np.float64))


def _fit_platt(p: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Raw (a, b): a may come out <= 0 on a model that ranks badly, and such a scaling is never used."""
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=1e6, max_iter=1000).fit(logit(p).reshape(-1, 1), y)
    return float(model.coef_[0, 0]), float(model.intercept_[0])


def _platt(p: np.ndarray, a: float, b: float) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-(a * logit(p) + b)))


class CalibrationCheck(BaseModel):
    """Brier and expected calibration error of out-of-fold predictions, raw and Platt-scaled (the scaling
    itself cross-validated), and whether the scaling is kept."""

    brier_raw: float
    brier_calibrated: float
    ece_raw: float
    ece_calibrated: float
    applied: bool
    calibration: Calibration | None = None


def expected_calibration_error(y: np.ndarray, p: np.ndarray, bins: int = 10) -> float:
    """Mean |observed rate - mean predicted| over equal-count bins, weighted by bin size."""
    y, p = np.asarray(y, dtype=np.float64), np.asarray(p, dtype=np.float64)
    order = np.argsort(p)
    total = 0.0
    for chunk in np.array_split(order, bins):
        if len(chunk):
            total += len(chunk) * abs(y[chunk].mean() - p[chunk].mean())
    return total / len(y)


def check_calibration(
    y: np.ndarray, oof: np.ndarray, seed: int = 42, min_gain: float = 0.001, groups: np.ndarray | None = None
) -> CalibrationCheck:
    """Platt scaling is kept only when its own cross-validated out-of-fold Brier beats the raw one by at
    least `min_gain` and its slope is positive: a well-calibrated model (logistic regression usually is) is left as
    it is, and a scaling that would reorder patients is never used. `groups` (the patient of each row, when
    repeated CV gives several predictions per patient) keeps a patient's rows in one fold."""
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

    y, oof = np.asarray(y).astype(int), np.asarray(oof, dtype=np.float64)
    calibrated = np.empty_like(oof)
    if groups is None:
        splits = StratifiedKFold(5, shuffle=True, random_state=seed).split(oof.reshape(-1, 1), y)
    else:
        splits = StratifiedGroupKFold(5, shuffle=True, random_state=seed).split(oof.reshape(-1, 1), y, groups)
    for train, test in splits:
        a, b = _fit_platt(oof[train], y[train])
        calibrated[test] = _platt(oof[test], a, b) if a > 0 else oof[test]
    brier_raw, brier_cal = float(np.mean((oof - y) ** 2)), float(np.mean((calibrated - y) ** 2))
    a, b = _fit_platt(oof, y)
    applied = brier_cal <= brier_raw - min_gain and math.isfinite(a) and a > 0
    return CalibrationCheck(
        brier_raw=brier_raw,
        brier_calibrated=brier_cal,
        ece_raw=expected_calibration_error(y, oof),
        ece_calibrated=expected_calibration_error(y, calibrated),
        applied=applied,
        calibration=Calibration(a=a, b=b) if applied else None,
    )
