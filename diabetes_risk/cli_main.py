"""The `diabetes-risk` console script: bytecode kept first, then the command line.

The install compiles nothing ahead (README, "Bytecode on first import"), so where PYTHONDONTWRITEBYTECODE is set (many
containers and CI images) every command would compile its imports (typer, rich, boto3, ...) from source again. This
module imports nothing else before it lets this process, and everything it starts, write a module's bytecode once."""

from __future__ import annotations

import os
import sys


def main() -> None:
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    sys.dont_write_bytecode = False
    from diabetes_risk.cli import app

    app(prog_name="diabetes-risk")
