"""The prediction and batch-score zips built for AWS: small enough, and they really run on their own."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from infra_cdk.bundling import build_bundle, build_predict_bundle, folder_mb

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
        "print(s.run(None, {'features': np.array([[0.3, 0.7]], np.float32)})[0].tolist());"
        # the patient-id path's reader (mmh3 computes Feast's key) is in the bundle too
        "from inference_core.online_features import entity_id; assert len(entity_id('p-1')) == 32"
    )
    out = subprocess.run(
        [sys.executable, "-S", "-c", code, str(build_predict_bundle()), boto_dir, str(model)],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
    )
    assert out.stdout.strip() == "[[0.30000001192092896, 0.699999988079071]]"


def test_batch_bundle_fits_lambda_and_scores_a_csv_in_isolation(tmp_path):
    """Lambda's limit is 250 MB unzipped; the batch core runs from the zip alone (python -S, plus boto3)."""
    import boto3
    import onnx
    from onnx import TensorProto, helper

    bundle = build_bundle("batch")
    assert folder_mb(bundle) <= 250
    top = {p.name for p in bundle.iterdir()}
    assert {"pyarrow", "onnxruntime", "batch_scoring", "batch_score", "inference_core"} <= top
    assert not top & {"sklearn", "scipy", "pandas", "mlflow", "feast", "xgboost"}
    features = ["pregnancies", "glucose", "blood_pressure", "skin_thickness", "bmi", "diabetes_pedigree", "age"]
    # probabilities = [1 - g/1000, g/1000] from the glucose column: enough to see rows flow through
    w = [[0.0, 0.0] for _ in features]
    w[1] = [-0.001, 0.001]
    graph = helper.make_graph(
        [
            helper.make_node(
                "Constant",
                [],
                ["w"],
                value=helper.make_tensor("wv", TensorProto.FLOAT, [7, 2], [v for pair in w for v in pair]),
            ),
            helper.make_node("Constant", [], ["b"], value=helper.make_tensor("bv", TensorProto.FLOAT, [2], [1.0, 0.0])),
            helper.make_node("MatMul", ["features", "w"], ["m"]),
            helper.make_node("Add", ["m", "b"], ["probabilities"]),
        ],
        "g",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, [None, 7])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [None, 2])],
    )
    model = tmp_path / "m.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), model)
    data = tmp_path / "in.csv"
    data.write_text(",".join(features) + "\n1,100,70,20,30,0.5,40\n1,x,70,20,30,0.5,40\n2,200,70,20,30,0.5,40\n")
    code = f"""
import sys, io, pathlib
sys.path[:0] = [sys.argv[1]]; sys.path.append(sys.argv[2])
from batch_scoring.core import score_table
from batch_scoring.drift import DriftAccumulator
from batch_scoring.reader import open_csv
from inference_core.contracts import ServingPointer
from inference_core.model_store import LoadedModel, make_session
import pyarrow.parquet as pq
f = {features!r}
p = ServingPointer(model_name="m", model_version="1", family="x", onnx_key="k", onnx_sha256="s", profile_key="p",
    model_card_key="c", features=f, thresholds={{"low": 0.15, "high": 0.5}}, metrics={{}}, mlflow_run_id="r",
    training_data_uri="u", training_data_sha256="s", trained_at="t", promoted_at="t")
s = make_session(open(sys.argv[3], "rb").read())
m = LoadedModel(p, s, "features", "probabilities", "e", 0)
out = pathlib.Path(sys.argv[5]); out.mkdir()
source = open_csv(open(sys.argv[4], "rb"), "in.csv", f, None)
summary = score_table(source, m, out, DriftAccumulator(None, f, 0.2, 0.2, 1), frozenset({{"glucose"}}), True)
t = pq.read_table(out / "predictions.parquet").to_pydict()
print(summary.rows_rejected, t["row"], [round(x, 3) for x in t["probability"]], t["risk_band"])
"""
    out = subprocess.run(
        [sys.executable, "-S", "-c", code, str(bundle), str(Path(boto3.__file__).parents[1]), str(model), str(data),
         str(tmp_path / "out")],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "1 [1, 3] [0.1, 0.2] ['low', 'moderate']"


def test_bridge_bundle_runs_its_real_handler_in_isolation(tmp_path):
    """The metrics bridge's zip: the real handler from the bundle alone (python -S, plus boto3/botocore, which the
    Lambda runtime provides), on the sample subscription event, with Prometheus unreachable."""
    import json

    import boto3

    from tests.events.loader import logs_subscription_event

    bundle = build_bundle("bridge")
    assert folder_mb(bundle) <= 30
    top = {p.name for p in bundle.iterdir()}
    assert {"observability", "metrics_bridge", "google", "cramjam", "aws_lambda_powertools"} <= top
    assert not top & {"numpy", "pandas", "sklearn", "onnxruntime", "pyarrow", "yaml"}
    event = tmp_path / "event.json"
    event.write_text(json.dumps(logs_subscription_event()))
    code = (
        "import json, os, sys; sys.path[:0] = [sys.argv[1]]; sys.path.append(sys.argv[2]);"
        "os.environ.update(DR_REMOTE_WRITE_URL='http://127.0.0.1:9/api/v1/write', DR_REMOTE_WRITE_TIMEOUT_S='0.5',"
        " DR_BRIDGE_MAX_SAMPLE_AGE_S='1e10');"  # the sample event's records are from a fixed day
        "from metrics_bridge.app import handler;"
        "print(json.dumps(handler(json.load(open(sys.argv[3])), None)))"
    )
    out = subprocess.run(
        [sys.executable, "-S", "-c", code, str(bundle), str(Path(boto3.__file__).parents[1]), str(event)],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    assert (summary["records"], summary["samples"], summary["written"]) == (2, 5, 0)
    assert summary["buffered"] == 5 and "unreachable" in summary["error"]


def lambda_runtime_path(tmp_path: Path) -> Path:
    """What the Lambda python3.13 runtime adds to a zip: boto3 and its dependencies, and nothing else (links into
    this venv's copies)."""
    import importlib.util

    runtime = tmp_path / "runtime"
    runtime.mkdir(exist_ok=True)
    for name in ("boto3", "botocore", "s3transfer", "urllib3", "dateutil", "jmespath", "six"):
        origin = Path(importlib.util.find_spec(name).origin)
        source = origin.parent if origin.name == "__init__.py" else origin
        link = runtime / source.name
        if not link.exists():
            link.symlink_to(source)
    return runtime


ISOLATED = (
    "import sys; leaked = sorted({m.split('.')[0] for m, mod in list(sys.modules.items())"
    " if 'site-packages' in (getattr(mod, '__file__', None) or '')});"
    "print('LEAKED', leaked)"
)


def _run_handler(bundle: Path, module: str, event: dict, env: dict, tmp_path: Path) -> dict:
    """The real handler, from the bundle folder alone: `python -S` (no site-packages) with the bundle first on
    sys.path and only what the Lambda runtime provides (boto3 and its dependencies) added. AWS calls go to a closed
    port. Fails if any module came from elsewhere."""
    import json

    event_file = tmp_path / f"{module}.json"
    event_file.write_text(json.dumps(event))
    code = (
        "import importlib, json, os, sys; sys.path[:0] = [sys.argv[1]]; sys.path.append(sys.argv[2]);"
        f"app = importlib.import_module({module!r});"
        "from types import SimpleNamespace as N;"
        "ctx = N(function_name='f', memory_limit_in_mb=512, aws_request_id='r',"
        " invoked_function_arn='arn:aws:lambda:us-east-1:000000000000:function:f',"
        " get_remaining_time_in_millis=lambda: 10000);"
        "print(json.dumps(app.handler(json.load(open(sys.argv[3])), ctx)));" + ISOLATED
    )
    base = {
        "PATH": "/usr/bin:/bin",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "x",
        "AWS_SECRET_ACCESS_KEY": "x",
        "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
        "AWS_MAX_ATTEMPTS": "1",
        "POWERTOOLS_METRICS_NAMESPACE": "DiabetesRisk",
    }
    out = subprocess.run(
        [sys.executable, "-S", "-c", code, str(bundle), str(lambda_runtime_path(tmp_path)), str(event_file)],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
        env=base | env,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    lines = out.stdout.strip().splitlines()
    assert lines[-1] == "LEAKED []", lines[-1]  # nothing from the project's venv
    return json.loads(lines[-2])


def test_predict_bundle_runs_its_real_handler_in_isolation(tmp_path):
    from tests.events.loader import api_event

    bundle = build_predict_bundle()
    env = {"DR_ARTIFACTS_BUCKET": "artifacts"}
    invalid = _run_handler(bundle, "predict.app", api_event(body={"glucose": "x"}), env, tmp_path)
    assert invalid["statusCode"] == 422 and "glucose" in invalid["body"]
    health = _run_handler(bundle, "predict.app", api_event("GET", "/health"), env, tmp_path)
    assert health["statusCode"] == 503  # S3 unreachable: no model, a clear 503
    spec = _run_handler(bundle, "predict.app", api_event("GET", "/openapi.json"), env, tmp_path)
    assert spec["statusCode"] == 200 and "/predict" in spec["body"]


def test_batch_bundle_runs_its_real_handler_in_isolation(tmp_path):
    from tests.events.loader import load_event

    event = load_event("s3_put_inbox")
    event["Records"][0]["s3"]["object"]["key"] = "outbox/not-for-me.csv"  # the handler's own filter, no S3 call
    env = {"DR_BATCH_BUCKET": "batch", "DR_ARTIFACTS_BUCKET": "artifacts", "DR_IDEMPOTENCY_TABLE": "idempotency"}
    result = _run_handler(build_bundle("batch"), "batch_score.app", event, env, tmp_path)
    assert result == {"results": []}
