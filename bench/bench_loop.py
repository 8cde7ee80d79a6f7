"""The development loop, phase by phase, each beside today's way where one can run in the same run. One JSON line.

- demo: every command of `make demo` (read from the Makefile's recipe, so the bench times what users run) against a
  fresh local cloud on free ports, timed one by one, or side by side where the recipe runs them so: `local up` beside
  `deploy --synth-only`, `deploy` (bootstrap-free, of the assembly that synth kept), `train` (the state machine, with
  its states' times), then the prediction, the batch, the feature store and monitoring; then, after `local down`,
  the same commands again (`demo_again`: the cloud starts from nothing, the synth finds the kept assembly unchanged);
- deploy: a handler-only change made live by `deploy --hotswap` vs the full deploy (cdklocal, synth included);
- cold start: a fresh process to the first answer of the prediction handler, S3 GETs against a stand-in S3 on
  127.0.0.1, with its import profile; baseline the same with a boto3 S3 client;
- the local API through API Gateway (token authorizer included) at 1, 10 and 50 clients: requests/s, p50, p99 and
  errors, the same champion on both sides; baseline: a second fresh local cloud with the executor as it was before
  (`executor_fast_path=False`: an HTTP opener built per request, one PutMetricData per invocation, a new host
  process for every concurrent request, results through LocalStack's runtime endpoint; `in_memory_client=False`:
  LocalStack's calls to itself over its HTTP port; `cfn_poll_s=1`: CloudFormation re-reads a resource being created
  once a second; `lambda_prewarm=False`: no environment started before a function's first invocation, so training
  there pays each state's cold start; its Train function searches on one process, `DR_SEARCH_JOBS=1`, as before
  the local target used every core; `mlflow_one_process=False`: MLflow served from the second process `mlflow
  server` starts), where the bootstrap stack is also deployed (`deploy --bootstrap`, the old
  way) and timed; its `local up` runs with no compiled bytecode (as every start did before bytecode was kept), and
  `import aws_cdk` (most of a synth) is timed both ways, and MLflow's start alone (to its health) both ways.

What cannot run side by side here (the previous search grid, the issue's fresh-clone figures) is in `issue_figures`,
labelled as such; `bench/bench_training.py` compares the grid with the search in one run.
BENCH_LOOP_SECONDS (default 15) sets each load level's measured time, after a 3 s warm-up.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "1")

SECONDS = float(os.environ.get("BENCH_LOOP_SECONDS", "15"))
WARMUP_S = 3.0
CLIENTS = (1, 10, 50)
CLI = str(Path(sys.executable).with_name("diabetes-risk"))
# The issue's figures (2026-11-30, 2 cores), for what has no baseline in this run.
ISSUE_FIGURES = {
    "demo_fresh_clone_s": 230,
    "local_up_s": 24,
    "cdklocal_bootstrap_s": 39,
    "deploy_s": 38,
    "training_state_machine_s": 78,
    "random_forest_grid_s": 33,
    "cold_start_ms": [439, 502],
    "api_rps": {"1": 10, "10": 17, "50": 11},
    "api_p99_ms": {"10": 4200, "50": 24600},
}


def demo_commands(makefile: Path = ROOT / "Makefile") -> list[list[list[str]]]:
    """The CLI commands of `make demo` in order, as groups: a group's commands run side by side (the recipe's
    `$(CLI) a & $(CLI) b; ...; wait`, e.g. the synth beside `local up`), a group of one alone. A recipe whose target
    has the `up` prerequisite starts with `local up`."""
    text = makefile.read_text()
    recipe = re.search(r"^demo:(.*?)\n((?:\t.*\n)+)", text, re.M)
    if not recipe:
        raise RuntimeError("no demo target in the Makefile")
    groups = [[["local", "up"]]] if re.search(r"\bup\b", recipe.group(1).split("##")[0]) else []
    for line in recipe.group(2).splitlines():
        for part in line.strip().lstrip("@").split(";"):  # e.g. `@sleep 2; $(CLI) ...`: a pause the demo takes counts
            side_by_side = [p.strip() for p in part.split(" & ")]
            group = [shlex.split(p[len("$(CLI)") :]) for p in side_by_side if p.startswith("$(CLI)")]
            if len(group) == len(side_by_side) and group:
                groups.append(group)
            elif part.strip().startswith("sleep "):
                groups.append([shlex.split(part.strip())])
    return groups


def cli_env(settings) -> dict[str, str]:
    """The environment that points the CLI at a bench's local cloud (its instance and ports)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DR_")}
    for name in type(settings).model_fields:
        if name == "instance" or name.endswith("_port"):
            env["DR_" + name.upper()] = str(getattr(settings, name))
    if settings.lambda_max_environments is not None:
        env["DR_LAMBDA_MAX_ENVIRONMENTS"] = str(settings.lambda_max_environments)
    env["DR_IN_MEMORY_CLIENT"] = str(settings.in_memory_client).lower()
    env["DR_EXECUTOR_FAST_PATH"] = str(settings.executor_fast_path).lower()
    env["DR_CFN_POLL_S"] = str(settings.cfn_poll_s)
    env["DR_LAMBDA_PREWARM"] = str(settings.lambda_prewarm).lower()
    env["DR_LAMBDA_PREWARM_HOLD_S"] = str(settings.lambda_prewarm_hold_s)
    env["DR_MLFLOW_ONE_PROCESS"] = str(settings.mlflow_one_process).lower()
    return env


def mlflow_start_s(one_process: bool) -> float:
    """`local up`'s MLflow alone, from its start to its health answering, on a fresh SQLite store: served from the
    `mlflow server` process (today) or from the second process it starts (before). Nothing else starts meanwhile."""
    from clouds import fresh_cloud

    from localcloud import runtime

    cloud = fresh_cloud("bench-loop-mlflow", mlflow_one_process=one_process)
    cloud.run_dir.mkdir(parents=True, exist_ok=True)
    (cloud.run_dir / "mlflow.db").unlink(missing_ok=True)
    log = open(cloud.run_dir / "mlflow-bench.log", "wb")  # noqa: SIM115 - closed below
    env = runtime._mlflow_env(cloud)
    t0 = time.perf_counter()
    proc = subprocess.Popen(runtime._mlflow_command(cloud), env=env, stdout=log, stderr=log, start_new_session=True)
    try:
        while not runtime.http_ok(f"{cloud.mlflow_url}/health", timeout=1):
            if proc.poll() is not None or time.perf_counter() - t0 > 120:
                raise RuntimeError(f"MLflow did not start: see {log.name}")
            time.sleep(0.05)
        return time.perf_counter() - t0
    finally:
        os.killpg(proc.pid, 15)
        proc.wait(timeout=30)
        log.close()


def training_states(stdout: str) -> dict[str, float]:
    """`diabetes-risk train`'s "✓ <state> <n> s" lines; a Map's iterations share the name: the last (the longest)."""
    return {name: float(value) for name, value in re.findall(r"✓ (.+?) ([\d.]+) s", stdout)}


def _run_group(group: list[list[str]], env: dict[str, str]) -> tuple[float, list[tuple[list[str], float, str]]]:
    """Run a group's commands side by side (a thread each); the group's wall time, and each command's own time
    (until it ended) and stdout. A command that failed fails the group once all have ended (none is left running)."""
    t0 = time.perf_counter()
    results: list[tuple[list[str], float, subprocess.CompletedProcess] | None] = [None] * len(group)

    def run(index: int, argv: list[str]) -> None:
        command = argv if argv[0] == "sleep" else [CLI, *argv]
        try:
            proc = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True)
        except OSError as exc:  # could not start: reported like a failed step
            proc = subprocess.CompletedProcess(command, 127, "", f"{type(exc).__name__}: {exc}")
        results[index] = (argv, time.perf_counter() - t0, proc)

    threads = [threading.Thread(target=run, args=(i, argv)) for i, argv in enumerate(group)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for argv, _, proc in results:
        if proc.returncode != 0:
            raise RuntimeError(
                f"demo step {' '.join(argv)} failed ({proc.returncode}): {proc.stdout[-1500:]}{proc.stderr[-1500:]}"
            )
    return time.perf_counter() - t0, [(argv, seconds, proc.stdout) for argv, seconds, proc in results]


def run_demo(settings) -> dict:
    phases, states, assembly, up = [], {}, None, None
    env = cli_env(settings)
    for group in demo_commands():
        wall, done = _run_group(group, env)
        for argv, seconds, out in done:
            if argv[0] == "deploy" and "--synth-only" not in argv:
                assembly = "reused" if "no file changed since the last synth" in out else "synthesized"
            if argv[0] == "train":
                states = training_states(out)
            if argv[:2] == ["local", "up"] and up is None:  # the first (the recipe's last only prints where to look)
                up = round(seconds, 1)
        if len(done) == 1:
            phases.append({"step": " ".join(group[0][:2]), "s": round(wall, 1)})
        else:  # side by side: the group's wall time, and each command's own
            each = {" ".join(argv): round(seconds, 1) for argv, seconds, _ in done}
            phases.append(
                {"step": " & ".join(" ".join(argv[:2]) for argv in group), "s": round(wall, 1), "each_s": each}
            )
        print(f"  {' & '.join(' '.join(argv) for argv in group)[:60]:60s} {wall:6.1f} s", flush=True)
    train = next(p["s"] for p in phases if p["step"].startswith("train"))
    deploy = next(p["s"] for p in phases if p["step"] == "deploy")
    first = phases[0]["s"]  # `local up`, with the synth beside it when the recipe runs one
    total = sum(p["s"] for p in phases)
    return {
        "total_s": round(total, 1),
        "local_up_s": up,
        "up_phase_s": first,
        "deploy_s": deploy,
        "train_s": train,
        "rest_s": round(total - first - deploy - train, 1),
        "phases": phases,
        "training_states_s": states,
        "assembly": assembly,
    }


def one_search_worker(settings) -> None:
    """The Train function's search on one process (DR_SEARCH_JOBS=1), as before the local target set it to every
    core: its other settings kept, the update waited for."""
    from localcloud.smoke import clients

    (lam,) = clients(settings, "lambda")
    names = [f["FunctionName"] for f in lam.list_functions()["Functions"] if "TrainingTrain" in f["FunctionName"]]
    if len(names) != 1:
        raise RuntimeError(f"expected one Train function in the baseline cloud, found {names}")
    variables = lam.get_function_configuration(FunctionName=names[0])["Environment"]["Variables"]
    lam.update_function_configuration(
        FunctionName=names[0], Environment={"Variables": {**variables, "DR_SEARCH_JOBS": "1"}}
    )
    lam.get_waiter("function_updated_v2").wait(FunctionName=names[0])


def hotswap_vs_full(settings) -> dict:
    """A one-line change to the predict handler (/health's answer gains a detail), live by `deploy --hotswap`,
    timed until the API answers from it; then the full deploy of the same app (cdklocal, CloudFormation)."""
    import requests

    from diabetes_risk.deploy import FUNCTIONS_DIR, deploy_local, hotswap_local, stack_outputs
    from diabetes_risk.predict_client import local_api_url

    marker = "bench loop hotswap"
    url = local_api_url(settings.localstack_url, stack_outputs(settings)["ApiId"]).rstrip("/")
    changed = Path(tempfile.mkdtemp(prefix="bench-loop-")) / "functions"
    shutil.copytree(FUNCTIONS_DIR, changed, ignore=shutil.ignore_patterns("__pycache__"))
    app = changed / "predict" / "app.py"
    line = 'HealthResponse(status="ok", model_version=model.pointer.model_version)'
    if line not in app.read_text():
        raise RuntimeError("the predict handler's /health changed: update the bench's edit")
    app.write_text(app.read_text().replace(line, line[:-1] + f', detail="{marker}")'))
    hotswap_local(settings)  # the deployed zips were built by CDK: every function is shipped once first
    t0 = time.perf_counter()
    hotswap_local(settings, source=changed, only=("Predict",))
    update_s = time.perf_counter() - t0
    while requests.get(f"{url}/health", timeout=60).json().get("detail") != marker:
        if time.perf_counter() - t0 > 120:
            raise RuntimeError("the hotswapped handler never answered within 120 s")
        time.sleep(0.05)
    live_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    deploy_local(settings, on_line=lambda _: None, fresh_synth=True)  # the whole CDK deploy (synth, assets, CFN)
    full_s = time.perf_counter() - t0
    shutil.rmtree(changed.parent, ignore_errors=True)
    return {
        "hotswap_predict_s": round(update_s, 2),
        "hotswap_until_answering_s": round(live_s, 2),
        "baseline_full_deploy_no_change_s": round(full_s, 1),
    }


def load(url: str, token: str, clients: int, seconds: float) -> dict:
    """`clients` threads, each on its own keep-alive session, single-patient POST /predict as fast as answered."""
    import requests

    from inference_core.contracts import EXAMPLE_PATIENT

    body = json.dumps(EXAMPLE_PATIENT)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    stop_warm = time.perf_counter() + WARMUP_S
    end = stop_warm + seconds
    results: list[list[tuple[float, int]]] = [[] for _ in range(clients)]
    finished: list[float] = [stop_warm]

    def client(i: int) -> None:
        session = requests.Session()
        session.trust_env = False
        while (now := time.perf_counter()) < end:
            try:
                status = session.post(f"{url}/predict", data=body, headers=headers, timeout=60).status_code
            except requests.RequestException:
                status = 0
            if now >= stop_warm:  # requests started in the measured window, each until its answer
                done_at = time.perf_counter()
                results[i].append(((done_at - now) * 1000, status))
                finished.append(done_at)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    done = [r for rs in results for r in rs]
    answered = [r for r in done if r[1] == 200]
    latencies = sorted(ms for ms, _ in done)
    elapsed = max(finished) - stop_warm
    if not latencies:
        return {"rps": 0.0, "p50_ms": None, "p99_ms": None, "errors": 0, "requests": 0}
    return {
        "rps": round(len(answered) / elapsed, 1),  # answered 200 per second of the window (until the last answer)
        "p50_ms": round(statistics.median(latencies), 1),
        "p99_ms": round(latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))], 1),
        "errors": len(done) - len(answered),
        "requests": len(done),
    }


def api_levels(settings, champion) -> dict:
    from bench_api_load import set_throttle

    from diabetes_risk.access import local_token
    from diabetes_risk.deploy import stack_outputs
    from diabetes_risk.predict_client import local_api_url
    from localcloud.smoke import clients

    outputs = stack_outputs(settings)
    s3, apigw = clients(settings, "s3", "apigateway")
    bucket = outputs["ArtifactsBucket"]
    s3.put_object(Bucket=bucket, Key=champion.pointer.onnx_key, Body=champion.onnx_bytes)
    s3.put_object(Bucket=bucket, Key="serving/champion.json", Body=champion.pointer.model_dump_json().encode())
    set_throttle(apigw, outputs["ApiId"], 10_000, 10_000)  # the stage's own 50/s would cap what is measured
    url = local_api_url(settings.localstack_url, outputs["ApiId"]).rstrip("/")
    token = local_token(settings, "clinic-demo", ["predict"])
    time.sleep(1.5)  # the functions re-read the pointer within their refresh interval (1 s locally)
    out = {}
    for n in CLIENTS:
        out[str(n)] = load(url, token, n, SECONDS)
        print(f"  {n:3d} clients: {out[str(n)]}", flush=True)
    return out


def cold_start() -> dict:
    """bench_predict's cold start (fresh process → first answer, real S3 GETs on 127.0.0.1), light vs boto3 S3."""

    from bench_predict import COLD, folder_s3, import_profile
    from champion import train_champion

    from inference_core.contracts import EXAMPLE_PATIENT
    from tests.events.loader import api_event

    champion = train_champion()
    work = Path(tempfile.mkdtemp(prefix="bench-loop-cold-"))
    bucket = work / "bench-bucket"
    (bucket / "models/v1").mkdir(parents=True)
    (bucket / "models/v1/model.onnx").write_bytes(champion.onnx_bytes)
    (bucket / "serving").mkdir()
    (bucket / "serving/champion.json").write_text(champion.pointer.model_dump_json())
    server = folder_s3(bucket)  # path-style GET /<bucket>/<key> from the bucket's folder
    env = {
        **os.environ,
        "BENCH_ROOT": str(ROOT),
        "BENCH_EVENT": json.dumps(api_event(body=EXAMPLE_PATIENT)),
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{server.server_port}",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_LOG_LEVEL": "INFO",
        "DR_ARTIFACTS_BUCKET": "bench-bucket",
        "PYDANTIC_DISABLE_PLUGINS": "__all__",  # as the deployed function's environment (infra_cdk/serving.py)
    }
    times: dict[str, list[float]] = {"light": [], "boto3": []}
    for _ in range(5):  # alternating, so drift of the machine hits both sides alike
        for client in times:
            proc = subprocess.run(
                [sys.executable, "-c", COLD, "onnx-" + client],
                env={**env, "DR_S3_CLIENT": client},
                capture_output=True,
                text=True,
                check=True,
            )
            times[client].append(float(proc.stdout.split("COLD")[-1]))
    profile = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", COLD, "onnx-light"],
        env={**env, "DR_S3_CLIENT": "light"},
        capture_output=True,
        text=True,
        check=True,
    ).stderr
    server.shutdown()
    return {
        "ms": round(statistics.median(times["light"]), 1),
        "runs_ms": [round(t, 1) for t in times["light"]],
        "import_profile_ms": import_profile(profile, top=12),
        "baseline_boto3_s3_ms": round(statistics.median(times["boto3"]), 1),
    }, champion


def from_source(env: dict[str, str], prefix: str) -> dict[str, str]:
    """An environment in which Python finds no compiled bytecode at first (PYTHONPYCACHEPREFIX, an empty folder):
    modules are compiled from source, as every process did before bytecode was kept (this machine sets
    PYTHONDONTWRITEBYTECODE, and uv did not compile). A plain `python` writes none; the CLI and what it starts write
    theirs into `prefix` (a first `local up` after an install that compiled nothing), and read each other's there."""
    return {**env, "PYTHONDONTWRITEBYTECODE": "1", "PYTHONPYCACHEPREFIX": prefix}


def import_cdk_s(env: dict[str, str]) -> float:
    """Seconds for a fresh `python -c "import aws_cdk"` (most of a synth)."""
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import aws_cdk"], env=env, check=True, capture_output=True)
    return time.perf_counter() - t0


def synth_app_s(eager: bool) -> float:
    """Seconds for the CDK app's own run in a synth (`python -m infra_cdk.app`, as cdk.json runs it), with aws_cdk's
    service modules loaded on first use, or all at import (`DR_CDK_EAGER_IMPORT=1`, as before)."""
    env = {**os.environ, "DR_CDK_EAGER_IMPORT": "1" if eager else "0", "CDK_CONTEXT_JSON": '{"target": "local"}'}
    with tempfile.TemporaryDirectory(prefix="bench-synth-") as out:
        env["CDK_OUTDIR"] = out
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "infra_cdk.app"], env=env, cwd=ROOT, check=True, capture_output=True)
        return time.perf_counter() - t0


def main() -> None:
    from clouds import fresh_cloud

    from diabetes_risk.deploy import deploy_local
    from localcloud import runtime

    print("cold start: fresh process to first answer (5 each, alternating) ...", flush=True)
    cold, champion = cold_start()
    print(f"  {cold}", flush=True)

    new = fresh_cloud("bench-loop")
    print(f"the demo's commands on a fresh local cloud ({new.localstack_url}) ...", flush=True)
    try:
        demo = run_demo(new)
        print("hotswap vs full deploy ...", flush=True)
        swap = hotswap_vs_full(new)
        print("the local API at 1/10/50 clients ...", flush=True)
        api = api_levels(new, champion)
        runtime.down(new)
        print("the demo again after `local down` (a restart: fresh cloud state, the kept assembly) ...", flush=True)
        again = run_demo(new)
        if again["assembly"] != "reused":
            raise RuntimeError("the demo after `local down` synthesized the app again: the kept assembly was not used")
    finally:
        runtime.down(new)

    old = fresh_cloud(
        "bench-loop-before",
        executor_fast_path=False,
        lambda_max_environments=0,
        in_memory_client=False,
        cfn_poll_s=1.0,  # LocalStack's own wait between CloudFormation's reads of a resource being created
        lambda_prewarm=False,  # every function's first invocation starts its environment
        mlflow_one_process=False,  # `mlflow server` serving from a second process
    )
    print(f"baseline: the local cloud as before ({old.localstack_url}), bootstrap stack included ...", flush=True)
    nopyc = tempfile.mkdtemp(prefix="bench-nopyc-")  # the baseline cloud's bytecode, removed once it is down
    try:
        t0 = time.perf_counter()  # `local up` through the CLI as the demo runs it, with nothing compiled
        subprocess.run(
            [CLI, "local", "up"], env=from_source(cli_env(old), nopyc), cwd=ROOT, check=True, capture_output=True
        )
        up_from_source = time.perf_counter() - t0
        first = deploy_local(old, on_line=lambda _: None, bootstrap=True, fresh_synth=True)
        one_search_worker(old)
        api_before = api_levels(old, champion)
        print("  training, each state's function cold-started by its first invocation ...", flush=True)
        t0 = time.perf_counter()
        trained = subprocess.run([CLI, "train"], env=cli_env(old), cwd=ROOT, check=True, capture_output=True, text=True)
        train_before = time.perf_counter() - t0
        states_before = training_states(trained.stdout)
    finally:
        runtime.down(old)
        shutil.rmtree(nopyc, ignore_errors=True)

    print("import aws_cdk: compiled bytecode vs from source (2 each) ...", flush=True)
    cdk_compiled = min(import_cdk_s(dict(os.environ)) for _ in range(2))
    with tempfile.TemporaryDirectory(prefix="bench-nopyc-") as prefix:
        cdk_source = min(import_cdk_s(from_source(dict(os.environ), prefix)) for _ in range(2))
    print("the CDK app's synth: service modules on first use vs all at import (2 each, alternating) ...", flush=True)
    synth_times: dict[bool, list[float]] = {True: [], False: []}
    for _ in range(2):
        for eager in (True, False):
            synth_times[eager].append(synth_app_s(eager))
    print("MLflow's start: one process vs two (3 each, alternating) ...", flush=True)
    mlflow_times: dict[bool, list[float]] = {True: [], False: []}
    for _ in range(3):
        for one in (True, False):
            mlflow_times[one].append(mlflow_start_s(one))
    print(
        json.dumps(
            {
                "bench": "loop",
                "bytecode": {
                    "local_up_s": demo["local_up_s"],
                    "baseline_local_up_from_source_s": round(up_from_source, 1),
                    "import_aws_cdk_s": round(cdk_compiled, 1),
                    "baseline_import_aws_cdk_from_source_s": round(cdk_source, 1),
                },
                "mlflow_start": {
                    "one_process_s": round(statistics.median(mlflow_times[True]), 1),
                    "baseline_two_processes_s": round(statistics.median(mlflow_times[False]), 1),
                },
                "synth": {
                    "app_s": round(min(synth_times[False]), 1),
                    "baseline_all_service_modules_s": round(min(synth_times[True]), 1),
                },
                "demo": demo,
                # the same commands after `local down`: the cloud starts from nothing, the synthesized assembly and
                # every install cache are kept (the warm case)
                "demo_again": again,
                "deploy": {
                    **swap,
                    "baseline_bootstrap_stack_s": first["timings"].get("bootstrap_s"),
                    "baseline_first_deploy_s": first["timings"].get("deploy_s"),
                },
                "training": {
                    "state_machine_s": demo["train_s"],
                    "states_s": demo["training_states_s"],
                    # on the baseline cloud: no environment started before a function's first invocation
                    "baseline_state_machine_s": round(train_before, 1),
                    "baseline_states_s": states_before,
                },
                "cold_start": cold,
                "api": {"clients": api, "baseline": api_before, "seconds_per_level": SECONDS},
                "issue_figures": ISSUE_FIGURES,
            }
        )
    )


if __name__ == "__main__":
    main()
