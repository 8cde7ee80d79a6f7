"""Run the console: `python -m console [--port N] [--target local|aws]` (`diabetes-risk console` does the same)."""

from __future__ import annotations

import argparse
import sys

from pydantic import ValidationError


def serve(port: int | None = None, target: str | None = None, mlflow_url: str | None = None) -> None:
    import uvicorn

    from localcloud.settings import LocalCloudSettings

    from .app import create_app
    from .settings import ConsoleSettings
    from .sources import Sources

    given = {"port": port, "target": target, "mlflow_url": mlflow_url}
    settings = ConsoleSettings(**{k: v for k, v in given.items() if v is not None})
    cloud = LocalCloudSettings() if settings.target == "local" else None
    app = create_app(settings, Sources(settings, cloud))
    # open live streams must not hold a shutdown (`local down`, Ctrl-C) for more than a second
    uvicorn.run(
        app, host=settings.host, port=settings.port, log_level="warning", access_log=False, timeout_graceful_shutdown=1
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m console", description=__doc__)
    parser.add_argument("--port", type=int, help="port on 127.0.0.1 (env DR_CONSOLE_PORT, default 8088)")
    parser.add_argument("--target", choices=("local", "aws"), help="the embedded local cloud (default) or AWS")
    parser.add_argument("--mlflow-url", help="MLflow tracking server (default: the local cloud's)")
    args = parser.parse_args(argv)
    try:
        serve(args.port, args.target, args.mlflow_url)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        print(f"bad console settings: {problems}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
