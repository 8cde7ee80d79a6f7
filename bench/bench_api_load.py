"""The prediction API under load on the local cloud, with real tokens, measured by locust.

A fresh local cloud is started (free ports), the CDK app deployed, a champion published and a token minted per user
for the `clinic-demo` client. Then, through API Gateway (the local cloud's, with the Lambda authorizer):
- load: USERS concurrent locust users for SECONDS, each sending single-patient requests, 100-patient batches
  and some invalid ones (a bad value → 422, no token → 401), as fast as answered;
- throttling: the stage's limit (lifted to 10,000/s for the other runs, so it does not cap what is measured)
  lowered to THROTTLE_RATE/s (burst THROTTLE_BURST) for a short run, so the
  429s and their error body are seen, then restored;
- baseline: the same users for the same time on GET /health (no authorizer, no scoring): the stack's own
  overhead (API Gateway, the host executor, the function's invoke).
Server errors (5xx) are counted separately from failures. Prints one final JSON line."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

USERS = int(os.environ.get("BENCH_LOAD_USERS", "50"))
SECONDS = int(os.environ.get("BENCH_LOAD_SECONDS", "60"))
THROTTLE_RATE, THROTTLE_BURST, THROTTLE_USERS, THROTTLE_SECONDS = 5, 10, 20, 10
LOCUSTFILE = ROOT / "bench" / "load" / "locustfile.py"


def run_locust(
    host: str, user_class: str, users: int, seconds: int, tokens: list[str], patient: dict, work: Path
) -> dict:
    prefix = work / user_class.lower()
    status_file = work / f"{user_class.lower()}-status.json"
    cmd = [
        str(Path(sys.executable).with_name("locust")),
        "-f",
        str(LOCUSTFILE),
        user_class,
        "--headless",
        "--users",
        str(users),
        "--spawn-rate",
        str(users),
        "--run-time",
        f"{seconds}s",
        "--host",
        host,
        "--csv",
        str(prefix),
        "--only-summary",
        "--loglevel",
        "ERROR",
        "--stop-timeout",
        "30",
    ]
    env = {
        **os.environ,
        "DR_LOAD_TOKENS": json.dumps(tokens),
        "DR_LOAD_PATIENT": json.dumps(patient),
        "DR_LOAD_STATUS_FILE": str(status_file),
    }
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=seconds + 300)
    rows = {row["Name"]: row for row in csv.DictReader((work / f"{prefix.name}_stats.csv").open())}
    if "Aggregated" not in rows:
        raise RuntimeError(f"locust wrote no stats (exit {proc.returncode}): {proc.stderr[-2000:]}")
    counts = json.loads(status_file.read_text())

    def number(text: str) -> float | None:
        return None if text in ("N/A", "") else float(text)  # N/A: no request of that kind finished

    def figures(row: dict) -> dict:
        return {
            "requests": int(row["Request Count"]),
            "failures": int(row["Failure Count"]),
            "p50_ms": number(row["50%"]),
            "p99_ms": number(row["99%"]),
            "rps": round(float(row["Requests/s"]), 2),
        }

    status = {int(k): v for k, v in counts["status"].items()}
    return {
        **figures(rows["Aggregated"]),
        "server_errors": sum(v for k, v in status.items() if k >= 500),
        "status": dict(sorted(status.items())),
        "throttled": counts["throttled"],
        "by_request": {name: figures(row) for name, row in rows.items() if name != "Aggregated"},
    }


def set_throttle(apigw, api_id: str, rate: float, burst: int) -> None:
    apigw.update_stage(
        restApiId=api_id,
        stageName="prod",
        patchOperations=[
            {"op": "replace", "path": "/*/*/throttling/rateLimit", "value": str(rate)},
            {"op": "replace", "path": "/*/*/throttling/burstLimit", "value": str(burst)},
        ],
    )


def main() -> None:
    from champion import deploy_with_champion
    from clouds import fresh_cloud

    from diabetes_risk.access import local_token
    from diabetes_risk.predict_client import local_api_url
    from inference_core.contracts import EXAMPLE_PATIENT
    from localcloud import runtime
    from localcloud.smoke import clients

    settings = fresh_cloud("bench-load")
    print(f"starting a local cloud on {settings.localstack_url} ...", flush=True)
    runtime.up(settings, progress=lambda m: print("  " + m, flush=True))
    try:
        outputs = deploy_with_champion(settings)
        (apigw,) = clients(settings, "apigateway")
        host = local_api_url(settings.localstack_url, outputs["ApiId"])
        tokens = [local_token(settings, "clinic-demo", ["predict"]) for _ in range(USERS)]  # a client system each
        stage = apigw.get_stage(restApiId=outputs["ApiId"], stageName="prod")["methodSettings"]["*/*"]
        limits = (stage["throttlingRateLimit"], stage["throttlingBurstLimit"])
        # the stage's own limit (50/s) would cap what is measured: lifted for the load and baseline runs
        set_throttle(apigw, outputs["ApiId"], 10_000, 10_000)
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            print("warming up ...", flush=True)
            warm = run_locust(host, "ApiClient", 10, 20, tokens[:10], EXAMPLE_PATIENT, work)
            print(f"  {warm['requests']} requests, {warm['rps']} requests/s", flush=True)
            print(f"load: {USERS} users for {SECONDS} s (stage limit lifted) ...", flush=True)
            api = run_locust(host, "ApiClient", USERS, SECONDS, tokens, EXAMPLE_PATIENT, work)
            print(f"  {api['rps']} requests/s, p50 {api['p50_ms']} ms, p99 {api['p99_ms']} ms", flush=True)
            print(f"baseline: GET /health, {USERS} users for {SECONDS} s ...", flush=True)
            health = run_locust(host, "HealthClient", USERS, SECONDS, tokens, EXAMPLE_PATIENT, work)
            print(f"  {health['rps']} requests/s, p50 {health['p50_ms']} ms, p99 {health['p99_ms']} ms", flush=True)
            print(f"throttling: limit {THROTTLE_RATE}/s burst {THROTTLE_BURST}, {THROTTLE_USERS} users ...", flush=True)
            set_throttle(apigw, outputs["ApiId"], THROTTLE_RATE, THROTTLE_BURST)
            try:
                throttled = run_locust(
                    host, "ApiClient", THROTTLE_USERS, THROTTLE_SECONDS, tokens, EXAMPLE_PATIENT, work
                )
            finally:
                set_throttle(apigw, outputs["ApiId"], *limits)
        result = {
            "bench": "api_load",
            "users": USERS,
            "seconds": SECONDS,
            "stage_limits_deployed": {"rate": limits[0], "burst": limits[1]},
            "tokens": len(tokens),
            "api": {k: v for k, v in api.items()},
            "throttling": {
                "rate": THROTTLE_RATE,
                "burst": THROTTLE_BURST,
                "users": THROTTLE_USERS,
                "seconds": THROTTLE_SECONDS,
                "answered_429": throttled["status"].get(429, 0),
                "429_with_error_body": throttled["throttled"]["with_error_body"],
                "429_without_error_body": throttled["throttled"]["without_error_body"],
                "server_errors": throttled["server_errors"],
                "rps": throttled["rps"],
            },
            "baseline": {
                "what": f"GET /health, {USERS} users, {SECONDS} s",
                **{k: health[k] for k in ("requests", "rps", "p50_ms", "p99_ms", "failures", "server_errors")},
            },
            "ratio": round(api["rps"] / health["rps"], 3) if health["rps"] else None,
        }
    finally:
        runtime.down(settings)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
