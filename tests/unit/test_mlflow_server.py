"""The local cloud's MLflow server runs `mlflow server` and serves its uvicorn command from the same process
(localcloud/mlflow_server.py): MLflow's own checks and store setup, one import of MLflow instead of two."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import psutil
import pytest

from localcloud import mlflow_server, runtime
from localcloud.settings import LocalCloudSettings
from tests.unit.fresh_python import in_a_fresh_python

ONE_PROCESS = """
import json, os, sys
import mlflow.utils.process
from localcloud import mlflow_server

def second_process(command, **_):
    raise AssertionError(f"MLflow started a second process: {command[:3]}")

def served_here(command, extra_env=None):
    import mlflow.server
    os.environ.update(extra_env or {})
    store = os.environ.get(mlflow.server.BACKEND_STORE_URI_ENV_VAR)
    security = bool(mlflow.server.is_running_as_server)
    print(json.dumps({"args": list(command)[3:], "pid": os.getpid(), "store": store, "security": security}))

assert "mlflow.server" not in sys.modules and "uvicorn" not in sys.modules  # both as the launcher finds them
mlflow.utils.process._exec_cmd = second_process  # what mlflow.server would start, unless the launcher replaces it
mlflow_server.serve_here = served_here  # uvicorn's part, recorded instead of serving
print(os.getpid())
mlflow_server.main(sys.argv[1:])
"""


def test_mlflow_server_prepares_the_store_and_serves_its_uvicorn_command_here(tmp_path):
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    argv = ["--backend-store-uri", store, "--artifacts-destination", "s3://bucket/", "--host", "127.0.0.1"]
    code = ONE_PROCESS.replace("sys.argv[1:]", repr([*argv, "--port", "5999", "--workers", "1"]))
    lines = in_a_fresh_python(code, MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false").splitlines()
    served = json.loads(lines[-1])
    assert served["pid"] == int(lines[0])  # no second process
    assert served["args"][-1] == "mlflow.server.fastapi_app:app"
    assert served["args"][served["args"].index("--port") + 1] == "5999"
    assert served["args"][served["args"].index("--workers") + 1] == "1"
    assert served["store"] == store  # MLflow's own environment for its app
    assert served["security"]  # MLflow's Flask app took its security middleware, as in its own server process
    with sqlite3.connect(tmp_path / "mlflow.db") as db:  # `mlflow server` created the schema before serving
        assert db.execute("select name from experiments").fetchall() == [("Default",)]


@pytest.mark.parametrize(
    ("command", "env"),
    [
        ([sys.executable, "-m", "gunicorn", "app"], {}),  # another server: MLflow's own way
        ([sys.executable, "-m", "uvicorn", "app"], {mlflow_server.JOB_RUNNER: "/tmp/huey"}),  # with its job runner
    ],
)
def test_what_cannot_run_here_goes_to_mlflows_own_second_process(command, env):
    started = []
    run = mlflow_server.one_process(lambda cmd, extra_env=None, **kw: started.append((cmd, extra_env, kw)) or "proc")
    assert run(command, extra_env=env, synchronous=False) == "proc"
    assert started == [(command, env, {"synchronous": False})]


def test_the_one_process_server_answers_and_stops_on_sigterm(tmp_path):
    """As `local up` starts it and `local down` stops it (SIGTERM to its process group, killed after 10 s)."""
    from dr_host_executor.process import free_port

    port = free_port()
    cloud = LocalCloudSettings(state_dir=tmp_path, mlflow_port=port)
    command = runtime._mlflow_command(cloud)
    log = open(tmp_path / "mlflow.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(command, env=runtime._mlflow_env(cloud), stdout=log, stderr=log, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while not runtime.http_ok(f"http://127.0.0.1:{port}/health", timeout=1):
            assert proc.poll() is None, (tmp_path / "mlflow.log").read_text()[-2000:]
            assert time.monotonic() < deadline, "MLflow did not answer within 120 s"
            time.sleep(0.1)
        assert psutil.Process(proc.pid).children(recursive=True) == []  # serving from the one process
        started = time.monotonic()
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)
        assert time.monotonic() - started < 10
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()
    assert "Shutting down" in (tmp_path / "mlflow.log").read_text()
    assert not any(c.laddr.port == port for c in psutil.net_connections("tcp") if c.status == psutil.CONN_LISTEN)


def test_the_local_cloud_starts_mlflow_through_the_one_process_server(tmp_path, monkeypatch):
    monkeypatch.setenv("DR_STATE_DIR", str(tmp_path))
    command = runtime._mlflow_command(LocalCloudSettings())
    assert command[:3] == [sys.executable, "-m", "localcloud.mlflow_server"]
    two = runtime._mlflow_command(LocalCloudSettings(mlflow_one_process=False))  # the way before, for the bench
    assert two[:2] == [str(runtime.Path(sys.executable).with_name("mlflow")), "server"] and two[2:] == command[3:]
