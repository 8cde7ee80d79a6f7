"""Patient-id predictions: (a) warm latency through the prediction handler, `{"patient_id"}` (one DynamoDB GetItem
by the light reader, then scoring) beside the same patient sent as measurements, in alternating blocks; (b) cold
start, fresh process to first answer, for both requests and for the patient-id request with a boto3 DynamoDB client;
(c) the alternative the design rejected, Feast itself in the function: its import and `get_online_features` for the
same patient. Ends with one JSON line.

Everything is local: a moto server on 127.0.0.1 stands in for S3 (the model) and DynamoDB (Feast materialises the
online store into it, as the pipeline does), so both sides make the same real HTTP calls."""

from __future__ import annotations

import io
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "functions"), str(ROOT), str(ROOT / "bench")]

from inference_core.contracts import EXAMPLE_PATIENT  # noqa: E402

N = int(os.environ.get("BENCH_ONLINE_EVENTS", "2000"))
BLOCK = 100
PATIENTS = 1000
TABLE_TEMPLATE = "bench.{project}.{table_name}"
TABLE = "bench.diabetes_risk.patient_measurements"

COLD = """
import sys, time, json, os
t0 = time.perf_counter()
sys.path[:0] = [os.environ["BENCH_ROOT"] + "/functions", os.environ["BENCH_ROOT"]]
import predict.app as module
event = json.loads(os.environ["BENCH_EVENT"])
class C:
    function_name = "bench"; memory_limit_in_mb = 1024; aws_request_id = "cold"
    invoked_function_arn = "arn:aws:lambda:us-east-1:000000000000:function:bench"
response = module.handler(event, C())
assert response["statusCode"] == 200, response
print("COLD", (time.perf_counter() - t0) * 1000)
"""

FEAST_COLD = """
import sys, time, os
t0 = time.perf_counter()
sys.path[:0] = [os.environ["BENCH_ROOT"]]
import feast
from training.features import FeastConfig, open_store
t_import = time.perf_counter()
store = open_store(FeastConfig(offline_root="unused", registry_path=os.environ["BENCH_REGISTRY"], online="dynamodb",
                              table_template=os.environ["BENCH_TEMPLATE"]))
answer = store.get_online_features(features=["patient_measurements:glucose"], entity_rows=[{"patient_id": "bp-0001"}])
assert answer.to_dict()["glucose"][0] is not None
print("COLD", (time.perf_counter() - t0) * 1000, (t_import - t0) * 1000)
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=1000, method="inclusive")[int(q * 10) - 1]


def main() -> None:
    import logging

    import boto3
    import pandas as pd
    from champion import train_champion

    from tests.events.loader import api_event
    from training.features import FeastConfig, materialize, open_store, write_measurements

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # the stand-in server's access log
    work = Path(tempfile.mkdtemp(prefix="bench-online-"))
    port = free_port()
    # its own process: the stand-in must not share this interpreter's lock with the handler being timed
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.1)
    env = {
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": endpoint,
        "DR_ARTIFACTS_BUCKET": "bench-artifacts",
        "DR_ONLINE_TABLE": TABLE,
        "DR_S3_CLIENT": "light",
        "DR_DYNAMODB_CLIENT": "light",
        "DR_MODEL_REFRESH_S": "3600",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_LOG_LEVEL": "INFO",
        "BENCH_ROOT": str(ROOT),
    }
    os.environ.update(env)

    print("setting up: champion, model in S3, Feast materialises 1,000 patients into DynamoDB ...", flush=True)
    champion = train_champion()
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="bench-artifacts")
    pointer = champion.pointer
    s3.put_object(Bucket="bench-artifacts", Key=pointer.onnx_key, Body=champion.onnx_bytes)
    s3.put_object(Bucket="bench-artifacts", Key="serving/champion.json", Body=pointer.model_dump_json().encode())
    measured_at = pd.Timestamp.now(tz="UTC").floor("D") - pd.Timedelta(days=30)
    rows = pd.DataFrame(
        [
            {"patient_id": f"bp-{i:04d}", "measured_at": measured_at, **EXAMPLE_PATIENT}
            | {"glucose": 90.0 + i % 150, "insulin": float("nan")}
            for i in range(1, PATIENTS + 1)
        ]
    )
    config = FeastConfig(
        offline_root=str(work / "measurements"),
        registry_path=str(work / "registry.db"),
        online="dynamodb",
        table_template=TABLE_TEMPLATE,
    )
    write_measurements(rows, config.offline_root, "bench")
    materialize(config)
    patient = {k: float(v) for k, v in rows.iloc[0].items() if k in EXAMPLE_PATIENT}
    by_id, by_values = api_event(body={"patient_id": "bp-0001"}), api_event(body=patient)

    import predict.app as app

    class Context:
        function_name = "bench"
        memory_limit_in_mb = 1024
        aws_request_id = "bench"
        invoked_function_arn = "arn:aws:lambda:us-east-1:000000000000:function:bench"

    sink = io.StringIO()
    real_stdout, times = sys.stdout, {"patient_id": [], "measurements": []}
    answers = {}
    sys.stdout = sink
    app.logger.registered_handler.setStream(sink)
    try:
        for event in (by_id, by_values) * 50:  # warm both paths
            app.handler(event, Context())
        for block in range(N // BLOCK):
            order = (("patient_id", by_id), ("measurements", by_values))
            for name, event in order if block % 2 == 0 else order[::-1]:
                for _ in range(BLOCK):
                    t0 = time.perf_counter()
                    response = app.handler(event, Context())
                    times[name].append((time.perf_counter() - t0) * 1000)
                    sink.seek(0)
                    sink.truncate()
                answers[name] = json.loads(response["body"])
    finally:
        sys.stdout = real_stdout
        app.logger.registered_handler.setStream(real_stdout)
    same = answers["patient_id"]["predictions"] == answers["measurements"]["predictions"]
    print(f"(a) {N} requests each, warm: the same probability both ways: {same}", flush=True)

    print("(b) cold starts, fresh process to first answer (5 each) ...", flush=True)
    cold = {}
    for name, event, extra in (
        ("measurements", by_values, {}),
        ("patient_id_light_reader", by_id, {}),
        ("patient_id_boto3_client", by_id, {"DR_DYNAMODB_CLIENT": "boto3"}),
    ):
        runs = []
        for _ in range(5):
            proc = subprocess.run(
                [sys.executable, "-c", COLD],
                env={**os.environ, **extra, "BENCH_EVENT": json.dumps(event)},
                capture_output=True,
                text=True,
                check=True,
            )
            runs.append(float(proc.stdout.split("COLD")[-1]))
        cold[name] = round(statistics.median(runs), 1)

    print("(c) the rejected alternative: Feast in the function (import + get_online_features), 3 runs ...", flush=True)
    feast_runs = []
    for _ in range(3):
        proc = subprocess.run(
            [sys.executable, "-c", FEAST_COLD],
            env={**os.environ, "BENCH_REGISTRY": config.registry_path, "BENCH_TEMPLATE": TABLE_TEMPLATE},
            capture_output=True,
            text=True,
            check=True,
        )
        total, imported = map(float, proc.stdout.split("COLD")[-1].split())
        feast_runs.append((total, imported))
    reader, get_ms = app.online_features(), []
    for _ in range(N):
        t0 = time.perf_counter()
        reader.get("bp-0001")
        get_ms.append((time.perf_counter() - t0) * 1000)
    store = open_store(config)
    feast_ms = []
    for _ in range(200):
        t0 = time.perf_counter()
        store.get_online_features(
            features=[f"patient_measurements:{f}" for f in pointer.features], entity_rows=[{"patient_id": "bp-0001"}]
        ).to_dict()
        feast_ms.append((time.perf_counter() - t0) * 1000)
    server.terminate()

    result = {
        "bench": "online_features",
        "requests_each": N,
        "same_probability": same,
        "warm_ms": {
            name: {"p50": round(statistics.median(v), 3), "p99": round(pct(v, 99), 3)} for name, v in times.items()
        },
        "light_reader_get_ms": {"p50": round(statistics.median(get_ms), 3), "p99": round(pct(get_ms, 99), 3)},
        "lookup_overhead_p50_ms": round(
            statistics.median(times["patient_id"]) - statistics.median(times["measurements"]), 3
        ),
        "cold_start_ms": cold,
        "feast_in_function": {
            "cold_start_ms": round(statistics.median(t for t, _ in feast_runs), 1),
            "import_ms": round(statistics.median(i for _, i in feast_runs), 1),
            "get_online_features_p50_ms": round(statistics.median(feast_ms), 3),
            "get_online_features_p99_ms": round(pct(feast_ms, 99), 3),
        },
        "setup": "moto server (own process) on 127.0.0.1 for S3 and DynamoDB; 1,000 patients materialised by Feast; "
        "Feast's figures: get_online_features alone (no scoring), cold start without a model load",
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
