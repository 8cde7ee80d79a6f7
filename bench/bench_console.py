"""The console in a real Chromium against a fresh local cloud: how fast its pages load, how soon a state change
shows on the execution page, and what the console process costs in memory.

- page load: navigation to `body[data-ready]` (HTML, CSS, JS, the 1.3 MB Graphviz wasm bundle, the graph drawn
  and, on an execution page, the first server-sent view coloured), LOADS times each, the browser's cache warm as
  a user's would be after the first visit;
- state change → page: for every change of a state's status during an execution started from the page (the
  history replayed event by event through the page's own analysis), the moment the page's graph showed the new
  status (a MutationObserver in the page) minus the timestamp of the event that caused it. Baseline, in the
  same run: a client polling GetExecutionHistory itself at the console's rate (0.5 s), as `diabetes-risk
  train` does — the moment it first saw that event, minus the same timestamp;
- memory: the console process's RSS after the runs (psutil), and its peak (VmHWM).
Needs Chromium (the OS package). Prints one final JSON line."""

from __future__ import annotations

import json
import os
import shutil
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

LOADS = int(os.environ.get("BENCH_LOADS", "10"))
RUNS = int(os.environ.get("BENCH_RUNS", "2"))
POLL_S = 0.5

OBSERVER = """
window.__changes = [];
new MutationObserver((records) => {
  for (const r of records) {
    const g = r.target;
    if (g.classList && g.classList.contains('state')) window.__changes.push([g.id, g.dataset.status, Date.now()]);
  }
}).observe(document.querySelector('#graph'), {subtree: true, attributes: true, attributeFilter: ['data-status']});
"""


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 3)


def poll_history(sfn, arn: str, seen: dict[int, float], stop: threading.Event) -> None:
    from diabetes_risk.runs import execution_history

    """The baseline client: GetExecutionHistory every POLL_S; when each event id was first seen."""
    while not stop.is_set():
        events = execution_history(sfn, arn)
        now = time.time()
        for event in events:
            seen.setdefault(event["id"], now)
        if any(e["type"].startswith("Execution") and e["type"] != "ExecutionStarted" for e in events):
            return
        time.sleep(POLL_S)


def status_flips(events: list[dict], graph) -> list[tuple[str, str, float, int]]:
    """(state element, its new status, the timestamp and id of the event that made it so): the history replayed
    event by event through the same analysis the page uses, so a Map state that stays "running" until its last
    iteration ends is timed from that last event, not the first."""
    from console.history import analyse

    ordered = sorted(events, key=lambda e: e["id"])
    flips, before = [], {}
    for k, event in enumerate(ordered):
        now = {i: s["status"] for i, s in analyse(ordered[: k + 1], graph).states.items()}
        for element, status in now.items():
            if status != before.get(element, "not_reached"):
                flips.append((element, status, event["timestamp"].timestamp(), event["id"]))
        before = now
    return flips


def main() -> None:
    import psutil
    from dr_host_executor.process import free_port
    from playwright.sync_api import sync_playwright

    from console.graph import build_graph
    from diabetes_risk.deploy import deploy_local
    from diabetes_risk.runs import execution_history
    from localcloud import runtime
    from localcloud.settings import LocalCloudSettings
    from localcloud.smoke import clients

    chromium = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if not chromium:
        sys.exit("bench_console needs Chromium: sudo apt-get install chromium")
    ports = {f"{n}_port": free_port() for n in ("localstack", "mlflow", "prometheus", "alertmanager", "alerts")}
    settings = LocalCloudSettings(instance="bench-console", console_port=free_port(), **ports)
    print("starting a local cloud and deploying", flush=True)
    runtime.up(settings, progress=lambda m: print("  " + m, flush=True))
    try:
        outputs = deploy_local(settings, on_line=lambda line: None)["outputs"]
        (sfn,) = clients(settings, "stepfunctions")
        url = settings.console_url
        definition = json.loads(
            sfn.describe_state_machine(stateMachineArn=outputs["TrainingStateMachineArn"])["definition"]
        )
        graph = build_graph(definition)
        page_delays, poll_delays, loads = [], [], {"pipeline": [], "executions": [], "execution": []}
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            names = []
            for run in range(RUNS):
                page.goto(f"{url}/executions")
                page.wait_for_selector("body[data-ready=true]", state="attached")
                page.fill(
                    "#start-input",
                    json.dumps(
                        {
                            "train_uri": "bundled",
                            "holdout_uri": "bundled",
                            "families": ["logistic_regression", "xgboost"],
                        }
                    ),
                )
                page.click("#start-button")
                page.wait_for_url(f"{url}/executions/console-*")
                name = page.url.rsplit("/", 1)[-1]
                names.append(name)
                arn = outputs["TrainingStateMachineArn"].replace(":stateMachine:", ":execution:") + f":{name}"
                seen: dict[int, float] = {}
                stop = threading.Event()
                poller = threading.Thread(target=poll_history, args=(sfn, arn, seen, stop), daemon=True)
                poller.start()
                page.wait_for_selector("#graph svg", state="attached")
                page.evaluate(OBSERVER)
                page.wait_for_selector("body[data-status=SUCCEEDED]", state="attached", timeout=900_000)
                stop.set()
                poller.join(10)
                changes = page.evaluate("window.__changes")
                events = execution_history(sfn, arn)
                for element, status, at, event_id in status_flips(events, graph):
                    shown = [c[2] / 1000 for c in changes if c[0] == element and c[1] == status and c[2] / 1000 >= at]
                    if shown and event_id in seen:
                        page_delays.append(min(shown) - at)
                        poll_delays.append(seen[event_id] - at)
                print(f"  run {run + 1}: {name}, {len(page_delays)} state changes so far", flush=True)
            for _ in range(LOADS):
                for kind, path in (
                    ("pipeline", "/pipeline"),
                    ("executions", "/executions"),
                    ("execution", f"/executions/{names[-1]}"),
                ):
                    started = time.perf_counter()
                    page.goto(f"{url}{path}")
                    page.wait_for_selector("body[data-ready=true]", state="attached", timeout=60_000)
                    loads[kind].append(time.perf_counter() - started)
            browser.close()
        console = runtime._read_pids(settings)["console"]["pid"]
        rss = psutil.Process(console).memory_info().rss / 2**20
        with open(f"/proc/{console}/status") as status:
            hwm = next(int(line.split()[1]) for line in status if line.startswith("VmHWM")) / 1024
    finally:
        runtime.down(settings)
    result = {
        "bench": "console",
        "page_load_p50_s": {k: pct(v, 0.5) for k, v in loads.items()},
        "page_load_max_s": {k: round(max(v), 3) for k, v in loads.items()},
        "state_change_to_page_s": {
            "p50": pct(page_delays, 0.5),
            "p90": pct(page_delays, 0.9),
            "max": round(max(page_delays), 3),
            "n": len(page_delays),
        },
        "baseline_polling_client_s": {
            "p50": pct(poll_delays, 0.5),
            "p90": pct(poll_delays, 0.9),
            "max": round(max(poll_delays), 3),
            "n": len(poll_delays),
        },
        "console_rss_mb": round(rss, 1),
        "console_peak_mb": round(hwm, 1),
        "runs": RUNS,
        "loads": LOADS,
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
