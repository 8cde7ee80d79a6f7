"""Score patients with the loaded ONNX model: probabilities, risk bands, linear contributions."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from .contracts import Calibration, LinearExplainer, Patient, Prediction
from .model_store import LoadedModel


def feature_matrix(patients: Sequence[Patient], features: Sequence[str]) -> np.ndarray:
    """Rows in the model's feature order; absent optional values become NaN for the model to impute."""
    rows = [[_value(getattr(p, f, None)) for f in features] for p in patients]
    return np.asarray(rows, dtype=np.float32).reshape(len(rows), len(features))


def _value(v: float | None) -> float:
    return math.nan if v is None else float(v)


def probabilities(model: LoadedModel, X: np.ndarray) -> np.ndarray:
    out = model.session.run([model.probability_output], {model.input_name: X})[0]
    return calibrate(model.pointer.calibration, np.asarray(out, dtype=np.float64)[:, 1])


def calibrate(calibration: Calibration | None, p: np.ndarray) -> np.ndarray:
    """The model's Platt scaling when training chose one (the same formula as training.stats)."""
    if calibration is None:
        return p
    q = np.clip(p, 1e-6, 1 - 1e-6)
    return 1.0 / (1.0 + np.exp(-(calibration.a * np.log(q / (1 - q)) + calibration.b)))


def risk_band(probability: float, thresholds: dict[str, float]) -> str:
    if probability >= thresholds["high"]:
        return "high"
    if probability < thresholds["low"]:
        return "low"
    return "moderate"


BANDS = ("low", "moderate", "high")


def risk_band_indices(probability: np.ndarray, thresholds: dict[str, float]) -> np.ndarray:
    """`risk_band` for many rows at once: indices into BANDS (0 low, 1 moderate, 2 high), int8."""
    return np.where(probability >= thresholds["high"], 2, np.where(probability < thresholds["low"], 0, 1)).astype(
        np.int8
    )


def contributions(explainer: LinearExplainer, X: np.ndarray) -> np.ndarray:
    """coef times standardised value per feature (log-odds); their sum plus the intercept is the logit."""
    x = np.where(np.isnan(X), np.asarray(explainer.medians), X)
    z = (x - np.asarray(explainer.mean)) / np.asarray(explainer.scale)
    return z * np.asarray(explainer.coef)


def predict(model: LoadedModel, patients: Sequence[Patient]) -> list[Prediction]:
    features = model.pointer.features
    X = feature_matrix(patients, features)
    proba = probabilities(model, X)
    contrib = contributions(model.pointer.explainer, X) if model.pointer.explainer else None
    if contrib is not None and model.pointer.calibration is not None:
        contrib = contrib * model.pointer.calibration.a  # the served logit is a * (model logit) + b
    out = []
    for i, p in enumerate(proba):
        p = float(min(1.0, max(0.0, p)))
        out.append(
            Prediction(
                probability=round(p, 6),
                risk_band=risk_band(p, model.pointer.thresholds),
                contributions=(
                    {f: round(float(c), 6) for f, c in zip(features, contrib[i], strict=True)}
                    if contrib is not None
                    else None
                ),
            )
        )
    return out
