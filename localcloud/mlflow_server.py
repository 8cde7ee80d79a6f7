"""MLflow's tracking server in one process.

`mlflow server` imports MLflow, prepares the stores (the SQLite schema), then starts uvicorn as a second process,
which imports MLflow again to serve its app: MLflow was the last service of `local up` to answer, 13.5 s after the
start on the slower 2-core machine, with LocalStack's health after 4.1 s (by hand, 2026-12-01). This runs the same
`mlflow server` command, options and checks included, and serves the uvicorn command it would have started from
this process, whose MLflow is already imported (`bench/bench_loop.py` times MLflow's start both ways).

Used as `python -m localcloud.mlflow_server <mlflow server options>`. What this process cannot serve the same way
goes to MLflow's own second process: a server other than uvicorn, or MLflow's job runner (which `local up` turns off,
MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false). If MLflow no longer starts its server through `mlflow.server._exec_cmd`
(a private name, checked against the pinned 3.17), it starts MLflow's own way.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable, Sequence

UVICORN = ("-m", "uvicorn")
JOB_RUNNER = "_MLFLOW_HUEY_STORAGE_PATH"  # in the server's environment only when MLflow's job runner starts beside it


def serve_here(command: Sequence[str], extra_env: dict[str, str] | None = None) -> None:
    """Serve MLflow's uvicorn command in this process, with the environment MLflow set for it. Returns when uvicorn
    stops (after SIGTERM, uvicorn's shutdown re-raises the signal, so the process ends as if killed by it)."""
    os.environ.update(extra_env or {})
    from uvicorn.main import main as uvicorn_cli

    uvicorn_cli.main(args=list(command)[3:], prog_name="uvicorn")


def one_process(exec_cmd: Callable) -> Callable:
    """MLflow's `_exec_cmd`, but a uvicorn server without the job runner is served here (see serve_here)."""

    def run(command: Sequence[str], extra_env: dict[str, str] | None = None, **kwargs):
        if list(command)[1:3] != list(UVICORN) or JOB_RUNNER in (extra_env or {}):
            return exec_cmd(command, extra_env=extra_env, **kwargs)
        serve_here(command, extra_env)
        raise SystemExit(0)

    return run


def main(argv: Sequence[str] | None = None) -> None:
    # uvicorn imported first: mlflow.server decides at its import whether it runs as a server (and then adds its
    # Flask security middleware) by finding uvicorn already imported, as in the process `mlflow server` starts
    importlib.import_module("uvicorn")
    import mlflow.server
    from mlflow.cli import cli

    if hasattr(mlflow.server, "_exec_cmd"):
        mlflow.server._exec_cmd = one_process(mlflow.server._exec_cmd)
    else:
        print("localcloud.mlflow_server: MLflow starts its server its own way here (two processes)", file=sys.stderr)
    cli.main(args=["server", *(sys.argv[1:] if argv is None else argv)], prog_name="mlflow")


if __name__ == "__main__":
    main()
