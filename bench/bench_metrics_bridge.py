"""Metrics bridge on the local cloud: how long after a handler returns its sample is queryable in Prometheus,
whether any sample is lost, what the bridge costs per batch, and what it costs the API's throughput.

A fresh local cloud is started (free ports), the CDK app deployed, a champion published; then
- throughput: the same load (REQUESTS requests, CLIENTS concurrent clients) through API Gateway with the
  subscriptions on and off, alternating, ROUNDS times each;
- delay: Prometheus is polled every POLL_S for the raw latency samples; each sample's delay is the moment it
  was first seen minus its EMF timestamp (set when the handler returns); only samples whose timestamp falls in
  an "on" round count (the subscriptions are removed only once that round's samples stopped arriving);
- lost: requests answered 200 in the "on" rounds minus their latency samples in Prometheus;
- bridge cost: the bridge's own `BridgeBatchSeconds` (decode, convert and the remote writes) from its log group.
Baseline: a CloudWatch-polling exporter (prometheus/cloudwatch_exporter) reads metrics with its default
`delay_seconds: 600` behind real time, so a sample is visible 600 s after it happened at best; it is not run
here (it needs CloudWatch metrics, which LocalStack community does not make from EMF).
Prints one final JSON line."""

from __future__ import annotations

import json
import os
import statistics
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

REQUESTS = int(os.environ.get("BENCH_REQUESTS", "240"))
CLIENTS = int(os.environ.get("BENCH_CLIENTS", "8"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
POLL_S = 0.1
BASELINE_DELAY_S = 600.0


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1] if len(values) > 1 else values[0]


def load(url: str, patient: dict, headers: dict[str, str]) -> tuple[float, int]:
    """REQUESTS POSTs from CLIENTS threads; returns (requests/s, number answered 200)."""
    import requests

    session_local = threading.local()

    def one(_: int) -> int:
        if not hasattr(session_local, "s"):
            session_local.s = requests.Session()
        return session_local.s.post(url, json=patient, headers=headers, timeout=60).status_code

    t0 = time.perf_counter()
    with ThreadPoolExecutor(CLIENTS) as pool:
        codes = list(pool.map(one, range(REQUESTS)))
    return REQUESTS / (time.perf_counter() - t0), sum(c == 200 for c in codes)


class SampleWatcher:
    """Polls Prometheus for the raw latency samples and notes when each one first became visible."""

    def __init__(self, prom: str) -> None:
        self.prom = prom
        self.first_seen: dict[tuple, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.poll_once()
            self._stop.wait(POLL_S)

    def poll_once(self) -> None:
        from observability.prometheus_api import query

        now = time.time()
        for row in query(self.prom, 'diabetes_risk_latency{service="predict"}[30m]'):
            instance = row["metric"].get("instance")
            for ts, _ in row["values"]:
                self.first_seen.setdefault((instance, float(ts)), now)

    def count_between(self, start: float, end: float) -> int:
        return sum(1 for (_, ts) in list(self.first_seen) if start <= ts <= end)

    def __enter__(self) -> SampleWatcher:
        self.poll_once()  # what exists before the measured rounds (the warm-up) is known before they start
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def drain(watcher: SampleWatcher, start: float, end: float, expected: int, timeout: float = 60) -> None:
    """Wait until the round's samples are all in Prometheus, or stopped arriving for 10 s."""
    deadline, last, last_change = time.time() + timeout, -1, time.time()
    while time.time() < deadline:
        n = watcher.count_between(start, end)
        if n >= expected:
            return
        if n != last:
            last, last_change = n, time.time()
        elif time.time() - last_change > 10:
            return
        time.sleep(0.2)


def bridge_batch_seconds(logs, bridge_function: str, lam) -> list[float]:
    """The bridge's own EMF `BridgeBatchSeconds` values from its log group (never subscribed)."""
    group = lam.get_function_configuration(FunctionName=bridge_function)["LoggingConfig"]["LogGroup"]
    values, token = [], None
    while True:
        page = logs.filter_log_events(logGroupName=group, **({"nextToken": token} if token else {}))
        for event in page["events"]:
            if '"BridgeBatchSeconds"' in event["message"]:
                values += json.loads(event["message"][event["message"].index("{") :])["BridgeBatchSeconds"]
        token = page.get("nextToken")
        if not token:
            return values


_STATE = {"on": True}


def set_subscriptions(logs, sources: dict[str, dict], on: bool) -> None:
    if _STATE["on"] == on:
        return
    _STATE["on"] = on
    for group, spec in sources.items():
        if on:
            logs.put_subscription_filter(logGroupName=group, **spec)
        else:
            logs.delete_subscription_filter(logGroupName=group, filterName=spec["filterName"])


def main() -> None:
    from champion import deploy_with_champion
    from dr_host_executor.process import free_port

    from diabetes_risk.access import local_token
    from diabetes_risk.predict_client import local_api_url
    from inference_core.contracts import EXAMPLE_PATIENT
    from infra_cdk.bundling import build_bundle, folder_mb
    from localcloud import runtime
    from localcloud.settings import LocalCloudSettings
    from localcloud.smoke import clients
    from observability.prometheus_api import scalar

    bundle = build_bundle("bridge")
    bridge_mb = folder_mb(bundle)
    wire_mb = sum(folder_mb(p) for p in bundle.iterdir() if p.name.split("-")[0] in ("google", "cramjam", "protobuf"))
    settings = LocalCloudSettings(
        instance="bench-bridge",
        logs_subscription_window_s=float(os.environ.get("BENCH_WINDOW_S", "1.0")),
        logs_subscription_concurrency=int(os.environ.get("BENCH_CONCURRENCY", "2")),
        localstack_port=free_port(),
        mlflow_port=free_port(),
        prometheus_port=free_port(),
        alertmanager_port=free_port(),
        alerts_port=free_port(),
    )
    print(f"starting a local cloud on {settings.localstack_url} ...", flush=True)
    runtime.up(settings, progress=lambda m: print("  " + m, flush=True))
    try:
        outputs = deploy_with_champion(settings)
        (logs,) = clients(settings, "logs")
        url = f"{local_api_url(settings.localstack_url, outputs['ApiId'])}/predict"
        headers = {"Authorization": f"Bearer {local_token(settings, 'clinic-demo', ['predict'])}"}
        prom = settings.prometheus_url

        sources = {}
        for group in (g["logGroupName"] for g in logs.describe_log_groups()["logGroups"]):
            for f in logs.describe_subscription_filters(logGroupName=group)["subscriptionFilters"]:
                sources[group] = {k: f[k] for k in ("filterName", "filterPattern", "destinationArn")}
        print(f"{len(sources)} log groups subscribed to the bridge", flush=True)

        print("warming up ...", flush=True)
        load(url, EXAMPLE_PATIENT, headers)
        time.sleep(3)
        rps = {"on": [], "off": []}
        answered = 0
        windows: list[tuple[float, float]] = []
        with SampleWatcher(prom) as watcher:
            for r in range(ROUNDS):
                for side in ("off", "on") if r % 2 == 0 else ("on", "off"):
                    set_subscriptions(logs, sources, side == "on")
                    started = time.time()
                    rate, ok = load(url, EXAMPLE_PATIENT, headers)
                    ended = time.time()
                    rps[side].append(rate)
                    if side == "on":
                        answered += ok
                        windows.append((started, ended))
                        drain(watcher, started, ended, ok)  # all of this round's samples in before switching off
                    print(
                        f"  round {r + 1} bridge {side}: {rate:.1f} requests/s ({ok}/{REQUESTS} answered 200)",
                        flush=True,
                    )
            set_subscriptions(logs, sources, True)
        on_samples = {k: v for k, v in watcher.first_seen.items() if any(a <= k[1] <= b for a, b in windows)}
        delays = [seen - ts for (_, ts), seen in on_samples.items()]
        lost = answered - len(on_samples)
        handling = bridge_batch_seconds(logs, outputs["MetricsBridgeFunctionName"], clients(settings, "lambda")[0])
        dropped = scalar(prom, "sum(sum_over_time(diabetes_risk_bridge_samples_dropped[30m]))") or 0
        written = scalar(prom, "sum(sum_over_time(diabetes_risk_bridge_samples_written[30m]))") or 0
        on, off = statistics.median(rps["on"]), statistics.median(rps["off"])
        result = {
            "bench": "metrics_bridge",
            "requests_per_round": REQUESTS,
            "clients": CLIENTS,
            "subscription_window_s": settings.logs_subscription_window_s,
            "subscription_concurrency": settings.logs_subscription_concurrency,
            "rounds": ROUNDS,
            "samples_expected": answered,
            "samples_seen": len(on_samples),
            "samples_lost": lost,
            "bridge_samples_dropped": dropped,
            "delay_p50_s": round(pct(delays, 50), 3),
            "delay_p99_s": round(pct(delays, 99), 3),
            "delay_max_s": round(max(delays), 3),
            "rps_bridge_on": round(on, 2),
            "rps_bridge_off": round(off, 2),
            "throughput_loss": round(1 - on / off, 3),
            "bridge_batches": len(handling),
            "bridge_samples_per_batch": round(written / max(len(handling), 1), 1),
            "bridge_ms_per_batch_p50": round(pct(handling, 50) * 1000, 2) if handling else None,
            "bridge_ms_per_batch_p99": round(pct(handling, 99) * 1000, 2) if handling else None,
            "bridge_package_mb": round(bridge_mb, 1),
            "wire_format_mb": round(wire_mb, 1),
            "baseline": {
                "what": "prometheus/cloudwatch_exporter, default delay_seconds (not run)",
                "delay_s": BASELINE_DELAY_S,
            },
            "ratio": round(BASELINE_DELAY_S / pct(delays, 99), 1),
        }
    finally:
        runtime.down(settings)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
