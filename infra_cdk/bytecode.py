"""Compile the project environment's bytecode for the dev install (tests, linters), without packages' test folders.

`make demo` and `make up` compile nothing ahead: their processes write each module's bytecode on its first import,
PYTHONDONTWRITEBYTECODE notwithstanding (the Makefile unexports it; the CLI drops it for what it starts), so only
what runs is compiled, on the core that imports it. The test suite imports most of the environment, many times over
in fresh processes (some with PYTHONDONTWRITEBYTECODE set on purpose), so `make install` compiles it all once here:
everything but the `tests`/`test` folders inside site-packages (`uv sync --compile-bytecode` compiles those too).

    python -m infra_cdk.bytecode
"""

from __future__ import annotations

import compileall
import re
import sys
import sysconfig
import time
from pathlib import Path


def skip_pattern(site: Path) -> re.Pattern[str]:
    """Paths compileall leaves out: a `tests`/`test` folder inside site-packages. Anchored at `site`: the folders
    above it may have any name."""
    return re.compile(rf"^{re.escape(str(site))}/(?:[^/]+/)*tests?/")


def main() -> int:
    site = Path(sysconfig.get_paths()["purelib"])
    started = time.perf_counter()
    ok = compileall.compile_dir(str(site), quiet=1, workers=0, rx=skip_pattern(site))
    print(f"compiled the environment's bytecode in {time.perf_counter() - started:.1f} s (no test folders)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
