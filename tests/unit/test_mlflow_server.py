"""The local cloud's MLflow server runs `mlflow server` and serves its uvicorn command from the same process
(localcloud/mlflow_server.py): MLflow's own checks and store setup, one import of MLflow instead of two."""

from __future__ import annotations

import os
import sqlite3
import sys

import pytest

from localcloud import mlflow_server, runtime
from localcloud.settings import LocalCloudSettings


def test_mlflow_server_prepares_the_store_and_serves_its_uvicorn_command_here(tmp_path, monkeypatch):
    import mlflow.server
    from uvicorn.main import main as uvicorn_command

    served = {}

    def fake_uvicorn(args, prog_name):
        served.update(args=list(args), pid=os.getpid(), store=os.environ.get(mlflow.server.BACKEND_STORE_URI_ENV_VAR))
        raise SystemExit(0)  # as uvicorn does when the server stops

    monkeypatch.setattr(uvicorn_command, "main", fake_uvicorn)

    def second_process(command, **_):
        raise AssertionError(f"MLflow started a second process: {command[:3]}")

    monkeypatch.setattr(mlflow.server, "_exec_cmd", second_process)  # what MLflow would do, unless replaced
    monkeypatch.setattr(os, "environ", os.environ.copy())  # what the server sets stays out of the other tests
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    argv = ["--backend-store-uri", store, "--artifacts-destination", "s3://bucket/", "--host", "127.0.0.1"]
    with pytest.raises(SystemExit) as done:
        mlflow_server.main([*argv, "--port", "5999", "--workers", "1"])
    assert done.value.code == 0
    assert served["pid"] == os.getpid()  # no second process
    assert served["args"][-1] == "mlflow.server.fastapi_app:app"
    assert served["args"][served["args"].index("--port") + 1] == "5999"
    assert served["args"][served["args"].index("--workers") + 1] == "1"
    assert served["store"] == store  # MLflow's own environment for its app
    with sqlite3.connect(tmp_path / "mlflow.db") as db:  # `mlflow server` created the schema before serving
        assert db.execute("select name from experiments").fetchall() == [("Default",)]


def test_serve_here_refuses_anything_but_uvicorn():
    with pytest.raises(RuntimeError, match="not uvicorn"):
        mlflow_server.serve_here([sys.executable, "-m", "gunicorn", "app"])


def test_the_local_cloud_starts_mlflow_through_the_one_process_server(tmp_path, monkeypatch):
    monkeypatch.setenv("DR_STATE_DIR", str(tmp_path))
    command = runtime._mlflow_command(LocalCloudSettings())
    assert command[:3] == [sys.executable, "-m", "localcloud.mlflow_server"]
    assert command[command.index("--workers") + 1] == "1"
