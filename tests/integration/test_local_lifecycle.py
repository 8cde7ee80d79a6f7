"""`diabetes-risk local up/status/down` as a user runs them: twice-safe up, port clash, nothing left."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import psutil
import pytest
from dr_host_executor.process import free_port

from localcloud.settings import LocalCloudSettings
from localcloud.smoke import clients, deploy_function

pytestmark = pytest.mark.integration

CLI = [sys.executable, "-m", "diabetes_risk"]


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], env=env, capture_output=True, text=True, timeout=180)


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_up_twice_status_port_clash_and_down_leaves_nothing_running():
    ports = {
        f"DR_{name}_PORT": str(free_port())
        for name in ("LOCALSTACK", "MLFLOW", "PROMETHEUS", "ALERTMANAGER", "ALERTS", "CONSOLE")
    }
    env = {**os.environ, **ports, "DR_INSTANCE": "lifecycle", "COLUMNS": "200"}
    settings = LocalCloudSettings(
        instance="lifecycle",
        localstack_port=int(ports["DR_LOCALSTACK_PORT"]),
        mlflow_port=int(ports["DR_MLFLOW_PORT"]),
        prometheus_port=int(ports["DR_PROMETHEUS_PORT"]),
        alertmanager_port=int(ports["DR_ALERTMANAGER_PORT"]),
        alerts_port=int(ports["DR_ALERTS_PORT"]),
        console_port=int(ports["DR_CONSOLE_PORT"]),
    )
    family: set[int] = set()
    recorded: dict = {}
    first = cli(env, "local", "up")
    try:
        assert first.returncode == 0, first.stdout + first.stderr
        assert "local cloud up" in first.stdout and settings.localstack_url in first.stdout

        again = cli(env, "local", "up")
        assert again.returncode == 0 and "already running" in again.stdout

        status = cli(env, "local", "status", "--json")
        assert status.returncode == 0
        states = json.loads(status.stdout)
        assert [s["name"] for s in states] == [
            "localstack",
            "mlflow",
            "alert_receiver",
            "alertmanager",
            "prometheus",
            "console",
        ]
        assert all(s["healthy"] for s in states)

        clash = cli({**env, "DR_INSTANCE": "intruder"}, "local", "up")
        assert clash.returncode == 1
        assert f"{settings.localstack_port} is already in use" in clash.stderr + clash.stdout

        # a Lambda environment is running when we stop: it must go too
        (lam,) = clients(settings, "lambda")
        deploy_function(lam, "lifecycle-fn", "import os\ndef handler(e, c):\n    return os.getpid()\n")
        worker_pid = int(lam.invoke(FunctionName="lifecycle-fn")["Payload"].read())
        assert alive(worker_pid)

        recorded = json.loads(settings.pids_file.read_text())
        for record in recorded.values():
            proc = psutil.Process(record["pid"])
            family |= {proc.pid, *(p.pid for p in proc.children(recursive=True))}
        assert worker_pid in family
        assert len(family) >= 6  # LocalStack, MLflow (+ worker), Prometheus, Alertmanager, inbox, the Lambda
    finally:
        down = cli(env, "local", "down")
    assert down.returncode == 0, down.stderr
    assert "stopped: console, prometheus, alertmanager, alert_receiver, mlflow, localstack" in down.stdout
    assert [pid for pid in family if alive(pid)] == []
    assert not settings.pids_file.exists()
    assert Path(recorded["localstack"]["log"]).exists()  # logs stay for the post-mortem
