"""Start, stop and inspect the embedded local cloud: LocalStack (host mode), an MLflow server, and the
monitoring trio: Prometheus (remote-write receiver, alert rules), Alertmanager and the operator's alert inbox.

Every process started here is recorded (pid and start time) in `<state>/run/<instance>/pids.json`;
`down` ends those processes and every descendant they had (Lambda environments run in their own process
groups), so nothing is left behind. Logs go to `<state>/run/<instance>/logs/`.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psutil

from .install import ensure_localstack
from .settings import LocalCloudSettings, keeps_bytecode

Progress = Callable[[str], None]


class LocalCloudError(RuntimeError):
    """Something the user can fix: a port in use, a service that did not start (with its log)."""


@dataclass
class ServiceStatus:
    name: str
    pid: int | None
    running: bool
    healthy: bool
    url: str
    rss_mb: float
    processes: int


def _noop(_: str) -> None:
    pass


# --- helpers ------------------------------------------------------------------------------------------
def port_in_use(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def _who_listens(port: int) -> str:
    try:
        for conn in psutil.net_connections(kind="tcp"):
            if conn.laddr and conn.laddr.port == port and conn.status == psutil.CONN_LISTEN and conn.pid:
                proc = psutil.Process(conn.pid)
                return f" by pid {conn.pid} ({' '.join(proc.cmdline()[:3])})"
    except (psutil.Error, OSError):
        pass
    return ""


@functools.cache
def _health_opener(https: bool) -> urllib.request.OpenerDirector:
    """No proxies (every health URL is this machine's), built once; a TLS handler only for an https URL: building
    one loads the CA bundle, ≈ 50 ms a check on the slower 2-core machine (cProfile of `predict`, which checked six)."""
    handlers = [urllib.request.ProxyHandler({}), urllib.request.HTTPHandler(), urllib.request.HTTPErrorProcessor()]
    handlers += [urllib.request.HTTPDefaultErrorHandler(), urllib.request.HTTPRedirectHandler()]
    handlers.append(urllib.request.UnknownHandler())  # another scheme: an error, not None
    opener = urllib.request.OpenerDirector()
    for handler in handlers + ([urllib.request.HTTPSHandler()] if https else []):
        opener.add_handler(handler)
    return opener


def http_ok(url: str, timeout: float = 2.0) -> bool:
    try:
        with _health_opener(url.startswith("https:")).open(url, timeout=timeout) as response:
            return 200 <= response.status < 300
    except (urllib.error.URLError, OSError, ValueError):
        return False


def _tail(path: Path, lines: int = 25) -> str:
    try:
        return "".join(path.read_text(errors="replace").splitlines(keepends=True)[-lines:])
    except OSError:
        return ""


def _read_pids(settings: LocalCloudSettings) -> dict[str, dict]:
    try:
        return json.loads(settings.pids_file.read_text())
    except (OSError, ValueError):
        return {}


def _write_pids(settings: LocalCloudSettings, pids: dict[str, dict]) -> None:
    settings.run_dir.mkdir(parents=True, exist_ok=True)
    tmp = settings.pids_file.with_suffix(".tmp")
    tmp.write_text(json.dumps(pids, indent=2))
    tmp.replace(settings.pids_file)


def _process(record: dict) -> psutil.Process | None:
    """The recorded process if it is still the same one (guards against pid reuse)."""
    try:
        proc = psutil.Process(record["pid"])
        if abs(proc.create_time() - record["started"]) > 1.0 or proc.status() == psutil.STATUS_ZOMBIE:
            return None
        return proc
    except (psutil.Error, KeyError):
        return None


def _tree_rss_mb(proc: psutil.Process) -> tuple[float, int]:
    total, count = 0, 0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            total += p.memory_info().rss
            count += 1
        except psutil.Error:
            pass
    return total / 2**20, count


# --- the two services ---------------------------------------------------------------------------------
def localstack_env(settings: LocalCloudSettings) -> dict[str, str]:
    data = settings.run_dir / "localstack"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "LOCALSTACK_", "DR_"))}
    env.update(
        {
            "GATEWAY_LISTEN": f"{settings.host}:{settings.localstack_port}",
            "LOCALSTACK_HOST": f"{settings.host}:{settings.localstack_port}",
            "DNS_ADDRESS": "0",
            "DISABLE_EVENTS": "1",
            "SKIP_SSL_CERT_DOWNLOAD": "1",
            "SERVICES": settings.services,
            "FILESYSTEM_ROOT": str(data),
            "TMPDIR": str(data / "tmp"),
            "LAMBDA_RUNTIME_EXECUTOR": "host",
            # LocalStack's calls to itself (API Gateway → Lambda, Lambda → logs, metrics) dispatched in memory
            # instead of over its own HTTP port: 10 clients through API Gateway went from 65-92 to 113-120 requests/s
            # (measured by hand, 2 cores, with the executor's other changes already in)
            "IN_MEMORY_CLIENT": "1" if settings.in_memory_client else "0",
            "LAMBDA_RETRY_BASE_DELAY": str(settings.lambda_retry_base_delay_s),
            # the project's providers (localcloud/host_executor/dr_host_executor/providers.py)
            "PROVIDER_OVERRIDE_LOGS": "dr",
            "PROVIDER_OVERRIDE_DYNAMODB": "moto",
            "PROVIDER_OVERRIDE_APIGATEWAY": "dr",  # Lambda authorizers, throttling, gateway response templates
            "DR_LOGS_SUBSCRIPTION_WINDOW_S": str(settings.logs_subscription_window_s),
            "DR_LOGS_SUBSCRIPTION_CONCURRENCY": str(settings.logs_subscription_concurrency),
            "DR_LAMBDA_PYTHON": str(settings.lambda_python),
            "DR_EXECUTOR_FAST_PATH": "1" if settings.executor_fast_path else "0",
            "DR_CFN_POLL_S": str(settings.cfn_poll_s),
            "DR_LAMBDA_PREWARM": "1" if settings.lambda_prewarm else "0",
            "DR_LAMBDA_PREWARM_HOLD_S": str(settings.lambda_prewarm_hold_s),
            "DR_LAMBDA_MAX_ENVIRONMENTS": ""
            if settings.lambda_max_environments is None
            else str(settings.lambda_max_environments),
            # Handlers that import pandas/sklearn take seconds to cold-start on 2 cores.
            "LAMBDA_RUNTIME_ENVIRONMENT_TIMEOUT": "120",
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


def _start(name: str, cmd: list[str], env: dict[str, str], settings: LocalCloudSettings) -> dict:
    settings.logs_dir.mkdir(parents=True, exist_ok=True)
    log = settings.logs_dir / f"{name}.log"
    with log.open("ab") as out:
        proc = subprocess.Popen(
            cmd,
            env=keeps_bytecode(env),
            cwd=settings.run_dir,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    record = {"pid": proc.pid, "started": psutil.Process(proc.pid).create_time(), "log": str(log)}
    pids = _read_pids(settings)
    pids[name] = record
    _write_pids(settings, pids)
    return record


def _wait_healthy(name: str, url: str, record: dict, deadline: float) -> None:
    log = Path(record["log"])
    while time.monotonic() < deadline:
        if _process(record) is None:
            raise LocalCloudError(f"{name} exited while starting. Last lines of {log}:\n{_tail(log)}")
        if http_ok(url):
            return
        time.sleep(0.25)
    raise LocalCloudError(f"{name} was not healthy at {url} in time. Last lines of {log}:\n{_tail(log)}")


def _create_bucket(settings: LocalCloudSettings, bucket: str) -> None:
    import boto3

    s3 = boto3.client(
        "s3",
        endpoint_url=settings.localstack_url,
        region_name=settings.region,
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )
    with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou):
        s3.create_bucket(Bucket=bucket)


INSTALL_HINT = (
    "install it with `sudo apt-get install prometheus prometheus-alertmanager` (Debian/Ubuntu) or "
    "`brew install prometheus alertmanager` (macOS); `make install` does it when it can"
)
SERVICES = ("localstack", "mlflow", "alert_receiver", "alertmanager", "prometheus", "console")


def health_urls(settings: LocalCloudSettings) -> dict[str, str]:
    return {
        "localstack": f"{settings.localstack_url}/_localstack/health",
        "mlflow": f"{settings.mlflow_url}/health",
        "alert_receiver": f"{settings.alerts_url}/-/healthy",
        "alertmanager": f"{settings.alertmanager_url}/-/ready",
        "prometheus": f"{settings.prometheus_url}/-/ready",
        "console": f"{settings.console_url}/healthz",
    }


def _ports(settings: LocalCloudSettings) -> list[tuple[str, str, int]]:
    """(name, flag/env stem, port) of every service."""
    return [
        ("LocalStack", "LOCALSTACK", settings.localstack_port),
        ("MLflow", "MLFLOW", settings.mlflow_port),
        ("Prometheus", "PROMETHEUS", settings.prometheus_port),
        ("Alertmanager", "ALERTMANAGER", settings.alertmanager_port),
        ("the alert inbox", "ALERTS", settings.alerts_port),
        ("The console", "CONSOLE", settings.console_port),
    ]


def _monitoring_commands(settings: LocalCloudSettings) -> dict[str, list[str]]:
    from observability.config import render_alertmanager, render_prometheus

    missing = [
        n for n, b in (("prometheus", settings.prometheus_bin), ("alertmanager", settings.alertmanager_bin)) if not b
    ]
    if missing:
        raise LocalCloudError(f"{' and '.join(missing)} not found on PATH: {INSTALL_HINT}.")
    folder = settings.run_dir / "monitoring"
    folder.mkdir(parents=True, exist_ok=True)
    prom_yml, am_yml = folder / "prometheus.yml", folder / "alertmanager.yml"
    prom_yml.write_text(render_prometheus(settings.host, settings.prometheus_port, settings.alertmanager_port))
    am_yml.write_text(render_alertmanager(settings.host, settings.alerts_port))
    return {
        "alert_receiver": [
            sys.executable,
            "-m",
            "observability.alert_receiver",
            "--host",
            settings.host,
            "--port",
            str(settings.alerts_port),
            "--file",
            str(settings.alerts_file),
        ],
        "alertmanager": [
            str(settings.alertmanager_bin),
            f"--config.file={am_yml}",
            f"--storage.path={folder / 'alertmanager-data'}",
            f"--web.listen-address={settings.host}:{settings.alertmanager_port}",
            "--cluster.listen-address=",  # a single instance: no gossip port
        ],
        "prometheus": [
            str(settings.prometheus_bin),
            f"--config.file={prom_yml}",
            f"--storage.tsdb.path={folder / 'prometheus-data'}",
            f"--web.listen-address={settings.host}:{settings.prometheus_port}",
            "--web.enable-remote-write-receiver",
            "--web.enable-lifecycle",
        ],
    }


# --- public API ---------------------------------------------------------------------------------------
def status(
    settings: LocalCloudSettings, only: tuple[str, ...] | None = None, memory: bool = True
) -> list[ServiceStatus]:
    """Every service's state (or `only` those named): its process, health, and (unless `memory=False`) the memory of
    its process tree, which for LocalStack includes every Lambda environment."""
    pids = _read_pids(settings)
    urls = {name: url for name, url in health_urls(settings).items() if only is None or name in only}
    if settings.external:  # run by docker compose (which has no console): no process of ours, only health
        found = []
        for name, url in urls.items():
            if name != "console":
                ok = http_ok(url)
                found.append(ServiceStatus(name, None, ok, ok, url, 0.0, 0))
        return found
    result = []
    for name, url in urls.items():
        record = pids.get(name)
        proc = _process(record) if record else None
        rss, count = _tree_rss_mb(proc) if proc and memory else (0.0, 0)
        result.append(
            ServiceStatus(
                name=name,
                pid=record["pid"] if record else None,
                running=proc is not None,
                healthy=proc is not None and http_ok(url),
                url=url,
                rss_mb=rss,
                processes=count,
            )
        )
    return result


CORE = ("localstack", "mlflow")


def is_up(settings: LocalCloudSettings) -> bool:
    """LocalStack and MLflow answer: enough to deploy, train, predict and score (monitoring is checked by
    `local status`; a stopped Prometheus must not stop the rest). Services run by docker compose
    (DR_EXTERNAL) have no pids here: their health alone counts."""
    return all(s.healthy for s in status(settings, only=CORE, memory=False))


def up(settings: LocalCloudSettings, progress: Progress = _noop) -> float:
    """Start LocalStack and MLflow (if not already running) and wait until both are healthy.

    Returns the seconds it took. Safe to call twice: a healthy local cloud is left as it is.
    """
    started = time.monotonic()
    current = status(settings, memory=False)
    if all(s.healthy for s in current):
        progress("already running")
        return 0.0
    if all(s.healthy for s in current if s.name != "console"):  # only the console is gone: start it alone
        progress(f"starting the console on {settings.console_url}")
        record = _start_console(settings)
        _wait_healthy(
            "the console", health_urls(settings)["console"], record, time.monotonic() + settings.start_timeout_s
        )
        return time.monotonic() - started
    if any(s.running for s in current):
        progress("a previous start is half up; stopping it first")
        down(settings)
    for name, stem, port in _ports(settings):
        if port_in_use(settings.host, port):
            raise LocalCloudError(
                f"{name} port {settings.host}:{port} is already in use{_who_listens(port)}. "
                f"Stop that program, or choose another port (DR_{stem}_PORT or "
                f"--{stem.lower()}-port)."
            )
    monitoring = _monitoring_commands(settings)
    if ensure_localstack(settings):
        progress(f"installed LocalStack into {settings.localstack_venv}")
    # LocalStack community keeps no state across restarts; start MLflow fresh too so its registry never
    # points at artifacts that are gone.
    for stale in (
        settings.run_dir / "localstack",
        settings.run_dir / "mlflow.db",
        settings.run_dir / "monitoring" / "prometheus-data",
        settings.run_dir / "monitoring" / "alertmanager-data",
        settings.alerts_file,
    ):
        if stale.is_dir():
            shutil.rmtree(stale)
        elif stale.exists():
            stale.unlink()
    (settings.run_dir / "localstack" / "tmp").mkdir(parents=True, exist_ok=True)
    deadline = started + settings.start_timeout_s

    progress(f"starting LocalStack on {settings.localstack_url}")
    ls_python = settings.localstack_venv / "bin" / "python"
    record = _start("localstack", [str(ls_python), "-m", "localstack.runtime.main"], localstack_env(settings), settings)
    urls = health_urls(settings)
    try:
        # Everything starts at once; only the MLflow bucket waits for LocalStack (MLflow touches it only when an
        # artifact is written, never at start).
        progress(f"starting Prometheus on {settings.prometheus_url} (with Alertmanager and the alert inbox)")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "DR_"))}
        monitors = {name: _start(name, cmd, env, settings) for name, cmd in monitoring.items()}
        progress(f"starting MLflow on {settings.mlflow_url}")
        mlflow = _start("mlflow", _mlflow_command(settings), _mlflow_env(settings), settings)
        progress(f"starting the console on {settings.console_url}")
        console = _start_console(settings)
        _wait_healthy("LocalStack", f"{settings.localstack_url}/_localstack/health", record, deadline)
        _create_bucket(settings, settings.mlflow_bucket)
        for name, monitor in monitors.items():
            _wait_healthy(name, urls[name], monitor, deadline)
        _wait_healthy("MLflow", f"{settings.mlflow_url}/health", mlflow, deadline)
        _wait_healthy("the console", urls["console"], console, deadline)
    except BaseException:
        down(settings)
        raise
    return time.monotonic() - started


def _mlflow_env(settings: LocalCloudSettings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MLFLOW_"))}
    env.update(settings.client_env())
    env.pop("MLFLOW_TRACKING_URI")
    env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"
    return env


def _mlflow_command(settings: LocalCloudSettings) -> list[str]:
    """`mlflow server` with its options, served in one process (localcloud/mlflow_server.py) unless turned off."""
    server = (
        [sys.executable, "-m", "localcloud.mlflow_server"]
        if settings.mlflow_one_process
        else [str(Path(sys.executable).with_name("mlflow")), "server"]
    )
    return [
        *server,
        "--backend-store-uri",
        f"sqlite:///{settings.run_dir / 'mlflow.db'}",
        "--artifacts-destination",
        f"s3://{settings.mlflow_bucket}/",
        "--host",
        settings.host,
        "--port",
        str(settings.mlflow_port),
        "--workers",
        "1",
    ]


def _start_console(settings: LocalCloudSettings) -> dict:
    """The console reads this local cloud (its ports and state folder as DR_* variables); the user's own
    DR_CONSOLE_* settings pass through."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "DR_")) or k.startswith("DR_CONSOLE_")}
    env |= settings.dr_env()
    return _start("console", [sys.executable, "-m", "console"], env, settings)


def _stop(proc: psutil.Process) -> None:
    try:
        family = [proc, *proc.children(recursive=True)]
    except psutil.Error:
        family = [proc]
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGTERM)  # each service leads its own process group
    _, alive = psutil.wait_procs(family, timeout=10)
    # Lambda environments sit in process groups of their own; end any that outlived LocalStack.
    for p in alive:
        with contextlib.suppress(psutil.Error):
            p.kill()
    psutil.wait_procs(alive, timeout=5)


def down(settings: LocalCloudSettings, progress: Progress = _noop) -> list[str]:
    """Stop everything `up` started, and all their descendants. Returns the names it stopped."""
    pids = _read_pids(settings)
    stopped = []
    for name in reversed(SERVICES):
        record = pids.get(name)
        proc = _process(record) if record else None
        if proc is None:
            continue
        progress(f"stopping {name} (pid {proc.pid})")
        _stop(proc)
        stopped.append(name)
    with contextlib.suppress(FileNotFoundError):
        settings.pids_file.unlink()
    return stopped


MONITORING = ("alert_receiver", "alertmanager", "prometheus")  # can be stopped alone (outage drills)


def stop_service(settings: LocalCloudSettings, name: str) -> bool:
    """Stop one monitoring service (an outage drill: the functions must not notice). True if it was running."""
    if name not in MONITORING:
        raise ValueError(f"only {', '.join(MONITORING)} can be stopped alone, not {name!r}")
    record = _read_pids(settings).get(name)
    proc = _process(record) if record else None
    if proc is not None:
        _stop(proc)
    return proc is not None


def start_service(settings: LocalCloudSettings, name: str, timeout_s: float = 30.0) -> None:
    """Start one monitoring service again (its data folder is kept) and wait until it is healthy."""
    if name not in MONITORING:
        raise ValueError(f"only {', '.join(MONITORING)} can be started alone, not {name!r}")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "DR_"))}
    record = _start(name, _monitoring_commands(settings)[name], env, settings)
    _wait_healthy(name, health_urls(settings)[name], record, time.monotonic() + timeout_s)
