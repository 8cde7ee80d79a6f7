"""Prediction: (a) in-process handler latency over 10,000 single-patient events, ONNX handler vs the same
API scoring the same champion pipeline with scikit-learn; (b) cold start, fresh process to first response;
(c) unzipped package size. Baselines in the same run. Ends with one JSON line.

For (a) and the ONNX-vs-scikit-learn cold start, S3 reads are replaced by file reads (a stub client) so both
sides time their own work, not the network. The S3 access of the deployed function is then timed on its own:
cold starts with real S3 GETs against a stand-in S3 on 127.0.0.1, through the light reader (as deployed) and
through a boto3 client (before), with the import profile of the light one."""

from __future__ import annotations

import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "functions"))
sys.path.insert(0, str(ROOT))

from inference_core.contracts import EXAMPLE_PATIENT  # noqa: E402
from localcloud.settings import keeps_bytecode  # noqa: E402

N = int(os.environ.get("BENCH_PREDICT_EVENTS", "10000"))
PATIENT = EXAMPLE_PATIENT

STUB = '''
import io, os, pathlib, boto3
class _Body(io.BytesIO):
    pass
class FolderS3:
    """get_object from a folder: the bench times the handler, not the network."""
    class exceptions:
        NoSuchKey = FileNotFoundError
    def __init__(self, root): self.root = pathlib.Path(root)
    def get_object(self, Bucket, Key):
        data = (self.root / Key).read_bytes()
        return {"Body": _Body(data), "ETag": str(len(data))}
_real = boto3.client
boto3.client = lambda name, *a, **k: FolderS3(os.environ["BENCH_S3_DIR"]) if name == "s3" else _real(name, *a, **k)
'''

COLD = """
import sys, time, json, os
t0 = time.perf_counter()
if sys.argv[1] in ("onnx", "sklearn"):
    exec(open(os.environ["BENCH_STUB"]).read())
sys.path[:0] = [os.environ["BENCH_ROOT"] + "/functions", os.environ["BENCH_ROOT"], os.environ["BENCH_ROOT"] + "/bench"]
if sys.argv[1].startswith("onnx"):
    import predict.app as module
else:
    import sklearn_app as module
event = json.loads(os.environ["BENCH_EVENT"])
class C:
    function_name = "bench"; memory_limit_in_mb = 1024; aws_request_id = "cold"
    invoked_function_arn = "arn:aws:lambda:us-east-1:000000000000:function:bench"
response = module.handler(event, C())
assert response["statusCode"] == 200, response
print("COLD", (time.perf_counter() - t0) * 1000)
"""


def folder_s3(root: Path):
    """A stand-in S3 on 127.0.0.1: path-style GET /<bucket>/<key> from a folder, with an ETag; 404 NoSuchKey."""
    import http.server
    import threading

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            key = self.path.split("/", 2)[2] if self.path.count("/") >= 2 else ""
            path = root / key
            if not key or not path.is_file():
                body = b"<Error><Code>NoSuchKey</Code></Error>"
                self.send_response(404)
            else:
                body = path.read_bytes()
                self.send_response(200)
                self.send_header("ETag", f'"{len(body)}"')
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def import_profile(importtime: str, top: int = 10) -> dict[str, float]:
    """What the handler module imports, heaviest first (cumulative ms, from `python -X importtime`): the
    modules one level under the top-level imports, plus the top-level ones themselves."""
    out = {}
    for line in importtime.splitlines():
        parts = line.split("|")
        name = parts[2] if len(parts) == 3 else ""
        depth = (len(name) - len(name.lstrip(" ")) - 1) // 2
        if depth in (0, 1):
            try:
                out[parts[2].strip()] = round(int(parts[1]) / 1000, 1)
            except ValueError:
                continue
    return dict(sorted(out.items(), key=lambda kv: -kv[1])[:top])


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=1000, method="inclusive")[int(q * 10) - 1]


def shadow_cost(app, event, context, work: Path, pointer, valid, run) -> dict:
    """Handler p50 with the pointer's rollout off, in shadow (every request buffered, the challenger scoring each
    window in one run), and in shadow with the challenger scoring every request as it comes (the baseline), in
    alternating blocks so drift of the machine hits all sides alike."""
    import hashlib

    from inference_core.contracts import ModelRef, Rollout
    from inference_core.schema import LABEL
    from training.export import to_onnx
    from training.models import train_family

    features = pointer.features
    lr = train_family("logistic_regression", valid[features], valid[LABEL].to_numpy().astype(int), repeats=1)
    onnx_bytes = to_onnx(lr.pipeline, features)
    (work / "models/v2").mkdir(parents=True, exist_ok=True)
    (work / "models/v2/model.onnx").write_bytes(onnx_bytes)
    challenger = ModelRef(
        **{
            **pointer.champion_ref().model_dump(),
            "model_version": "2",
            "family": "logistic_regression",
            "onnx_key": "models/v2/model.onnx",
            "onnx_sha256": hashlib.sha256(onnx_bytes).hexdigest(),
        }
    )

    def serve(mode: str) -> None:
        doc = pointer.model_copy(update={"challenger": challenger, "rollout": Rollout(mode=mode, share=1.0)})
        (work / "serving/champion.json").write_text(doc.model_dump_json())
        app.STORE._checked_at = None  # re-read the pointer now (deployed: within DR_MODEL_REFRESH_S)
        app.STORE.get()

    times: dict[str, list[float]] = {"none": [], "shadow": [], "each": []}
    window = app.SHADOW.max_age_s
    for block in range(9):
        mode = ("none", "shadow", "each")[block % 3]
        serve("none" if mode == "none" else "shadow")
        # each: the challenger scores every request as it comes (a window of 0 s), the design batching replaced
        app.SHADOW.max_age_s = 0.0 if mode == "each" else window
        times[mode] += run(app.handler)
    app.SHADOW.max_age_s = window
    serve("shadow")
    answered = json.loads(app.handler(event, context)["body"])
    serve("none")
    off, on = statistics.median(times["none"]), statistics.median(times["shadow"])
    each = statistics.median(times["each"])
    return {
        "events_each": len(times["none"]),
        "window": {"max_rows": app.SHADOW.max_rows, "max_age_s": window},
        "handler_p50_us_off": round(off, 1),
        "handler_p50_us_shadow": round(on, 1),
        "extra_p50_us": round(on - off, 1),
        "handler_p99_us_off": round(percentile(times["none"], 99), 1),
        "handler_p99_us_shadow": round(percentile(times["shadow"], 99), 1),
        "baseline_challenger_per_request": {
            "handler_p50_us": round(each, 1),
            "extra_p50_us": round(each - off, 1),
            "handler_p99_us": round(percentile(times["each"], 99), 1),
        },
        "champion_answered_in_shadow": answered["variant"] == "champion",
    }


def main() -> None:
    import joblib
    from champion import train_champion

    from infra_cdk.bundling import PREDICT_PACKAGES, SKLEARN_PACKAGES, build_predict_bundle, folder_mb, install_packages
    from tests.events.loader import api_event

    champion = train_champion()
    pointer, features, thresholds = champion.pointer, champion.pointer.features, champion.pointer.thresholds

    work = Path(tempfile.mkdtemp(prefix="bench-predict-"))
    (work / "models/v1").mkdir(parents=True)
    (work / "serving").mkdir()
    (work / "models/v1/model.onnx").write_bytes(champion.onnx_bytes)
    (work / "serving/champion.json").write_text(pointer.model_dump_json())
    joblib.dump(champion.pipeline, work / "model.joblib")
    (work / "stub.py").write_text(STUB)
    env = {
        "DR_ARTIFACTS_BUCKET": "bench-bucket",
        "DR_MODEL_REFRESH_S": "3600",
        "BENCH_S3_DIR": str(work),
        "BENCH_SKLEARN_MODEL": str(work / "model.joblib"),
        "BENCH_FEATURES": ",".join(features),
        "BENCH_LOW": str(thresholds["low"]),
        "BENCH_HIGH": str(thresholds["high"]),
        "BENCH_STUB": str(work / "stub.py"),
        "BENCH_ROOT": str(ROOT),
        "AWS_DEFAULT_REGION": "us-east-1",
        "POWERTOOLS_LOG_LEVEL": "INFO",  # as deployed: one log line per request on both sides
    }
    os.environ.update(env)
    exec(STUB, {})
    sys.path.insert(0, str(ROOT / "bench"))
    import predict.app as onnx_app
    import sklearn_app

    event = api_event(body=PATIENT)

    class Context:
        function_name = "bench"
        memory_limit_in_mb = 1024
        aws_request_id = "bench"
        invoked_function_arn = "arn:aws:lambda:us-east-1:000000000000:function:bench"

    def run(handler) -> list[float]:
        out, sink = [], io.StringIO()
        real_stdout = sys.stdout
        sys.stdout = sink  # EMF and log lines are formatted as deployed, but land in memory, not a terminal
        for logger in (onnx_app.logger, sklearn_app.logger):
            logger.registered_handler.setStream(sink)
        try:
            for _ in range(200):
                handler(event, Context())
            for _ in range(N):
                t0 = time.perf_counter()
                response = handler(event, Context())
                out.append((time.perf_counter() - t0) * 1e6)
                sink.seek(0)
                sink.truncate()
        finally:
            sys.stdout = real_stdout
            for logger in (onnx_app.logger, sklearn_app.logger):
                logger.registered_handler.setStream(real_stdout)
        assert response["statusCode"] == 200, response
        return out

    print(f"(a) {N} single-patient events through each handler ...", flush=True)
    onnx_us, sklearn_us = run(onnx_app.handler), run(sklearn_app.handler)
    p_onnx = json.loads(onnx_app.handler(event, Context())["body"])["predictions"][0]["probability"]
    p_sk = json.loads(sklearn_app.handler(event, Context())["body"])["predictions"][0]["probability"]

    print("(a2) shadow scoring on vs off: the same events, blocks alternating, challenger = logistic regression ...")
    shadow = shadow_cost(onnx_app, event, Context(), work, pointer, champion.valid, run)

    print("(b) cold starts: fresh process to first response (3 each) ...", flush=True)
    cold = {}
    # bytecode written and kept (any value of PYTHONDONTWRITEBYTECODE, "0" too, would turn writing off)
    child_env = keeps_bytecode(dict(os.environ)) | {"BENCH_EVENT": json.dumps(event)}
    for mode in ("onnx", "sklearn"):
        times = []
        for _ in range(3):
            proc = subprocess.run(
                [sys.executable, "-c", COLD, mode], env=child_env, capture_output=True, text=True, check=True
            )
            times.append(float(proc.stdout.split("COLD")[-1]))
        cold[mode] = statistics.median(times)

    print("(b2) cold starts with real S3 GETs (stand-in S3 on 127.0.0.1): light reader vs boto3 client ...", flush=True)
    server = folder_s3(work)
    s3_env = {
        **child_env,
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{server.server_port}",
        "POWERTOOLS_TRACE_DISABLED": "true",
    }
    for mode, client in (("onnx-light", "light"), ("onnx-boto3", "boto3")):
        times = []
        for _ in range(5):
            proc = subprocess.run(
                [sys.executable, "-c", COLD, mode],
                env={**s3_env, "DR_S3_CLIENT": client, "DR_ARTIFACTS_BUCKET": "bench-bucket"},
                capture_output=True,
                text=True,
                check=True,
            )
            times.append(float(proc.stdout.split("COLD")[-1]))
        cold[mode] = statistics.median(times)
    profile = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", COLD, "onnx-light"],
        env={**s3_env, "DR_S3_CLIENT": "light", "DR_ARTIFACTS_BUCKET": "bench-bucket"},
        capture_output=True,
        text=True,
        check=True,
    ).stderr
    server.shutdown()
    imports = import_profile(profile)

    print("(c) package sizes (unzipped) ...", flush=True)
    bundle_mb = folder_mb(build_predict_bundle())
    import hashlib

    from infra_cdk.bundling import locked_versions

    pins = hashlib.sha256("\n".join(locked_versions(SKLEARN_PACKAGES)).encode()).hexdigest()[:12]
    sk_dir = ROOT / ".state" / "bundles" / f"sklearn-baseline-{pins}"
    if not (sk_dir / ".complete").exists():
        install_packages(SKLEARN_PACKAGES, sk_dir, prune=True)
        (sk_dir / ".complete").write_text("ok")
    sklearn_mb = folder_mb(sk_dir) + (folder_mb(ROOT / "inference_core") + folder_mb(ROOT / "functions/predict"))

    p50_onnx, p50_sk = statistics.median(onnx_us), statistics.median(sklearn_us)
    print(
        json.dumps(
            {
                "bench": "predict",
                "events": N,
                "handler_p50_us": round(p50_onnx, 1),
                "handler_p99_us": round(percentile(onnx_us, 99), 1),
                "cold_start_ms": round(cold["onnx"], 1),
                "cold_start_with_s3_ms": {
                    "light_reader": round(cold["onnx-light"], 1),
                    "boto3_client": round(cold["onnx-boto3"], 1),
                    "saved_ms": round(cold["onnx-boto3"] - cold["onnx-light"], 1),
                },
                "import_profile_ms": imports,
                "shadow": shadow,
                "package_mb": round(bundle_mb, 1),
                "same_probability": abs(p_onnx - p_sk) < 1e-4,
                "packages": list(PREDICT_PACKAGES),
                "baseline": {
                    "handler_p50_us": round(p50_sk, 1),
                    "handler_p99_us": round(percentile(sklearn_us, 99), 1),
                    "cold_start_ms": round(cold["sklearn"], 1),
                    "package_mb": round(sklearn_mb, 1),
                },
                "ratio": {
                    "handler_p50": round(p50_sk / p50_onnx, 2),
                    "cold_start": round(cold["sklearn"] / cold["onnx"], 2),
                    "package": round(sklearn_mb / bundle_mb, 2),
                },
            }
        )
    )


if __name__ == "__main__":
    main()
