"""The `diabetes-risk` console script: bytecode kept first, then the command line.

The install compiles nothing ahead (README, "Bytecode on first import"), so where PYTHONDONTWRITEBYTECODE is set (many
containers and CI images) every command would compile its imports (typer, rich, boto3, ...) from source again. This
module imports nothing else before it lets this process, and everything it starts, write a module's bytecode once.
It also answers Ctrl-C where a script started it in the background (`make demo` runs the synth beside `local up`):
there the shell has it ignore SIGINT, and a synth would go on writing the assembly after make stopped."""

from __future__ import annotations

import os
import signal
import sys


def main() -> None:
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    sys.dont_write_bytecode = False
    # a handler, not SIG_IGN: Python raises KeyboardInterrupt, and what it starts (CDK's node) gets the default
    signal.signal(signal.SIGINT, signal.default_int_handler)
    from diabetes_risk.cli import app

    app(prog_name="diabetes-risk")
