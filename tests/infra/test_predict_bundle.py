"""The prediction zip built for AWS: small enough, and it really runs the ONNX model on its own."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from infra_cdk.bundling import build_predict_bundle, folder_mb

ROOT = Path(__file__).resolve().parents[2]


def test_bundle_is_under_120_mb_without_heavy_libraries():
    bundle = build_predict_bundle()
    assert folder_mb(bundle) <= 120
    top = {p.name for p in bundle.iterdir()}
    assert {"onnxruntime", "numpy", "pydantic", "aws_lambda_powertools", "inference_core", "predict"} <= top
    assert not top & {"sklearn", "scipy", "pandas", "mlflow", "feast", "xgboost"}


def test_bundle_imports_and_scores_in_isolation(tmp_path):
    """Only the bundle (plus boto3, which the Lambda runtime provides) on sys.path."""
    import boto3
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Identity", ["features"], ["probabilities"])],
        "g",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, [None, 2])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [None, 2])],
    )
    model = tmp_path / "m.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), model)
    boto_dir = str(Path(boto3.__file__).parents[1])
    code = (
        "import sys; sys.path[:0] = [sys.argv[1]]; sys.path.append(sys.argv[2]);"
        "from inference_core.model_store import make_session; import numpy as np;"
        "s = make_session(open(sys.argv[3], 'rb').read());"
        "print(s.run(None, {'features': np.array([[0.3, 0.7]], np.float32)})[0].tolist())"
    )
    out = subprocess.run(
        [sys.executable, "-S", "-c", code, str(build_predict_bundle()), boto_dir, str(model)],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
    )
    assert out.stdout.strip() == "[[0.30000001192092896, 0.699999988079071]]"
