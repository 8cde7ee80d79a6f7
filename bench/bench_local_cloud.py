"""Embedded local cloud: start time, Lambda cold/warm invoke latency through the host executor, memory.

Baselines, in the same run: the same handler called in-process (warm) and in a fresh `python` process
(cold), so the executor's overhead is visible. Ends with one JSON line.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from dr_host_executor.process import free_port

from localcloud import runtime
from localcloud.settings import LocalCloudSettings
from localcloud.smoke import clients, deploy_function

HANDLER = "import os\ndef handler(event, context):\n    return {'pid': os.getpid(), 'n': event.get('n')}\n"
WARM_INVOKES = 300


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def main() -> None:
    settings = LocalCloudSettings(
        instance="bench",
        localstack_port=free_port(),
        mlflow_port=free_port(),
        prometheus_port=free_port(),
        alertmanager_port=free_port(),
        alerts_port=free_port(),
    )
    print(f"starting a local cloud on {settings.localstack_url} ...", flush=True)
    up_s = runtime.up(settings, progress=lambda m: print("  " + m, flush=True))
    try:
        statuses = runtime.status(settings)
        rss_idle = sum(s.rss_mb for s in statuses)
        (lam,) = clients(settings, "lambda")
        deploy_function(lam, "bench-fn", HANDLER)
        t0 = time.perf_counter()
        lam.invoke(FunctionName="bench-fn", Payload=b'{"n": 0}')["Payload"].read()
        cold_ms = (time.perf_counter() - t0) * 1000
        warm = []
        for i in range(WARM_INVOKES):
            t0 = time.perf_counter()
            lam.invoke(FunctionName="bench-fn", Payload=json.dumps({"n": i}))["Payload"].read()
            warm.append((time.perf_counter() - t0) * 1000)
        rss_busy = sum(s.rss_mb for s in runtime.status(settings))
    finally:
        runtime.down(settings)

    # baselines: the same handler without LocalStack
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "app.py").write_text(HANDLER)
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import app; app.handler({'n': 0}, None)"], cwd=tmp, check=True)
        cold_base_ms = (time.perf_counter() - t0) * 1000
        sys.path.insert(0, tmp)
        import app  # type: ignore[import-not-found]

        direct = []
        for i in range(WARM_INVOKES):
            t0 = time.perf_counter()
            json.loads(json.dumps(app.handler({"n": i}, None)))
            direct.append((time.perf_counter() - t0) * 1000)

    warm_p50 = statistics.median(warm)
    print(
        json.dumps(
            {
                "bench": "local_cloud",
                "up_s": round(up_s, 2),
                "rss_idle_mb": round(rss_idle),
                "rss_after_invokes_mb": round(rss_busy),
                "lambda_cold_ms": round(cold_ms, 1),
                "lambda_warm_p50_ms": round(warm_p50, 2),
                "lambda_warm_p99_ms": round(pct(warm, 99), 2),
                "warm_invokes": WARM_INVOKES,
                "baseline": {
                    "fresh_python_process_ms": round(cold_base_ms, 1),
                    "in_process_call_p50_ms": round(statistics.median(direct), 4),
                },
                "ratio": {
                    "cold_vs_fresh_process": round(cold_ms / cold_base_ms, 2),
                    "warm_overhead_ms": round(warm_p50 - statistics.median(direct), 2),
                },
            }
        )
    )


if __name__ == "__main__":
    main()
