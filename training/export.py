"""Export a whole fitted Pipeline to ONNX and prove it scores like the original.

The exported graph carries imputation and scaling, so the prediction Lambda needs only onnxruntime.
"""

from __future__ import annotations

import hashlib
from functools import cache

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

PARITY_TOLERANCE = 1e-4
TARGET_OPSET = {"": 17, "ai.onnx.ml": 3}


class ExportError(RuntimeError):
    """The ONNX model does not reproduce the scikit-learn model closely enough; nothing is exported."""


@cache
def _register_xgboost() -> None:
    from onnxmltools.convert.xgboost.operator_converters.XGBoost import convert_xgboost
    from skl2onnx import update_registered_converter
    from skl2onnx.common.shape_calculator import calculate_linear_classifier_output_shapes
    from xgboost import XGBClassifier

    update_registered_converter(
        XGBClassifier,
        "XGBoostXGBClassifier",
        calculate_linear_classifier_output_shapes,
        convert_xgboost,
        options={"nocl": [True, False], "zipmap": [True, False, "columns"]},
    )


def to_onnx(pipeline: Pipeline, features: list[str]) -> bytes:
    """One float32 input named `features` of shape [n, len(features)]; outputs `label` and
    `probabilities` ([n, 2], no ZipMap, so onnxruntime returns a plain array)."""
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType

    _register_xgboost()
    model = convert_sklearn(
        pipeline,
        name="diabetes-risk",
        initial_types=[("features", FloatTensorType([None, len(features)]))],
        target_opset=TARGET_OPSET,
        options={id(pipeline.steps[-1][1]): {"zipmap": False}},
    )
    model.doc_string = "diabetes-risk; input columns: " + ",".join(features)
    return model.SerializeToString()


def onnx_proba(model_bytes: bytes, X: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])
    outputs = session.run(None, {"features": X.astype(np.float32)})
    return np.asarray(outputs[1])[:, 1]


def linear_explainer(pipeline: Pipeline) -> dict | None:
    """For a logistic regression (impute → scale → model), the numbers serving needs to give per-feature
    contributions without scikit-learn; None for tree ensembles, whose contributions are not cheap."""
    from sklearn.linear_model import LogisticRegression

    steps = dict(pipeline.steps)
    model, impute, scale = steps.get("model"), steps.get("impute"), steps.get("scale")
    if not isinstance(model, LogisticRegression) or impute is None or scale is None:
        return None
    return {
        "kind": "linear",
        "medians": impute.statistics_.tolist(),
        "mean": scale.mean_.tolist(),
        "scale": scale.scale_.tolist(),
        "coef": model.coef_[0].tolist(),
        "intercept": float(model.intercept_[0]),
    }


def export_with_parity(pipeline: Pipeline, X: pd.DataFrame) -> tuple[bytes, dict]:
    """ONNX bytes and the parity report on X (the holdout); raises ExportError beyond the tolerance."""
    features = list(X.columns)
    model_bytes = to_onnx(pipeline, features)
    expected = pipeline.predict_proba(X)[:, 1]
    got = onnx_proba(model_bytes, X.to_numpy(dtype=np.float64))
    max_diff = float(np.max(np.abs(got - expected)))
    report = {
        "explainer": linear_explainer(pipeline),
        "max_abs_diff": max_diff,
        "rows": len(X),
        "tolerance": PARITY_TOLERANCE,
        "sha256": hashlib.sha256(model_bytes).hexdigest(),
        "bytes": len(model_bytes),
        "features": features,
    }
    if not max_diff <= PARITY_TOLERANCE:
        raise ExportError(
            f"ONNX export differs from scikit-learn by up to {max_diff:.2e} on {len(X)} holdout rows "
            f"(tolerance {PARITY_TOLERANCE:.0e}); the model was not exported"
        )
    return model_bytes, report
