"""MLflow's tracking server in one process.

`mlflow server` imports MLflow, prepares the stores (the SQLite schema), then starts uvicorn as a second process,
which imports MLflow again to serve its app: MLflow was the last service of `local up` to answer, 13.5 s after the
start on the slower 2-core machine, with LocalStack's health after 4.1 s (by hand, 2026-12-01). This runs the same
`mlflow server` command, options and checks included, and serves the uvicorn command it would have started from
this process, whose MLflow is already imported.

Used as `python -m localcloud.mlflow_server <mlflow server options>`. If MLflow no longer starts its server through
`mlflow.server._exec_cmd` (a private name, checked against the pinned 3.17), the server starts MLflow's own way.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

UVICORN = ("-m", "uvicorn")


def serve_here(command: Sequence[str], extra_env: dict[str, str] | None = None, **_: object) -> None:
    """In place of `_exec_cmd(command, extra_env=...)`: serve the uvicorn command here, then exit as it would."""
    argv = list(command)
    if argv[1:3] != list(UVICORN):
        raise RuntimeError(f"MLflow asked to run {argv[:3]}, not uvicorn: start it with `mlflow server` instead")
    os.environ.update(extra_env or {})
    from uvicorn.main import main as uvicorn_cli

    uvicorn_cli.main(args=argv[3:], prog_name="uvicorn")  # exits when the server stops (SIGTERM, SIGINT)


def main(argv: Sequence[str] | None = None) -> None:
    import mlflow.server
    from mlflow.cli import cli

    if hasattr(mlflow.server, "_exec_cmd"):
        mlflow.server._exec_cmd = serve_here
    else:
        print("localcloud.mlflow_server: MLflow starts its server its own way here (two processes)", file=sys.stderr)
    cli.main(args=["server", *(sys.argv[1:] if argv is None else argv)], prog_name="mlflow")


if __name__ == "__main__":
    main()
