"""Compile the project environment's bytecode at install, without what is never imported.

Where PYTHONDONTWRITEBYTECODE is set (this machine, many containers and CI images) nothing is compiled on use, so
the install compiles ahead (`import aws_cdk` from source took 23 s against 8 s compiled). Compiling everything
(`uv sync --compile-bytecode`) spent most of its time on aws-cdk-lib's ~300 service modules, 152 MB of generated
source, of which the app runs about 56 since they load on first use (`lazy_cdk`), and on the packages' own test
suites. This compiles the rest: the service modules the app imports and everything they import at their top
(`from ..aws_ec2 import ...`), found by reading the sources, and every other package but its `tests` folders. A
module left out still works: it is compiled in memory on each import.

    python -m infra_cdk.bytecode             # the environment running it (make's runtime install)
    python -m infra_cdk.bytecode --all-cdk   # every aws_cdk module too (make install: tests import aws_cdk whole)
"""

from __future__ import annotations

import ast
import compileall
import re
import sys
import sysconfig
import time
from pathlib import Path

PACKAGE = "aws_cdk"
APP_DIR = Path(__file__).resolve().parent
_SIBLING = re.compile(r"^from \.\.(\w+)", re.MULTILINE)  # a service module's imports of the others, at its top
_ROOT_CHILD = re.compile(r"^from \.(\w+) import", re.MULTILINE)  # the root package's own, besides `from . import x`


def app_modules(app_dir: Path = APP_DIR) -> set[str]:
    """aws_cdk's submodules the app's code names: `from aws_cdk import aws_s3`, `from aws_cdk.aws_s3 import ...`."""
    found: set[str] = set()
    for path in app_dir.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and node.module == PACKAGE and node.level == 0:
                found |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith(PACKAGE + "."):
                found.add(node.module.split(".")[1])
            elif isinstance(node, ast.Import):
                found |= {a.name.split(".")[1] for a in node.names if a.name.startswith(PACKAGE + ".")}
    return found


def closure(package_dir: Path, start: set[str]) -> set[str]:
    """`start` and every submodule they import at their top, transitively, plus what the root package imports."""
    root = package_dir / "__init__.py"
    todo = set(start) | set(_ROOT_CHILD.findall(root.read_text())) if root.exists() else set(start)
    seen: set[str] = set()
    while todo:
        name = todo.pop()
        init = package_dir / name / "__init__.py"
        if name in seen or not init.exists():  # a class, not a submodule (`from aws_cdk import Duration`)
            continue
        seen.add(name)
        todo |= set(_SIBLING.findall(init.read_text())) - seen
    return seen


def skip_pattern(site: Path, keep: set[str] | None) -> re.Pattern[str]:
    """Paths compileall leaves out: a `tests`/`test` folder inside site-packages, and aws_cdk's service modules
    (`aws_*`) not in `keep` (None: all of them kept). The rest of aws_cdk (its jsii runtime, the bundled assets'
    modules, `interfaces`, ...) is compiled. Anchored at `site`: the folders above it may have any name."""
    base = re.escape(str(site))
    tests = rf"^{base}/(?:[^/]+/)*tests?/"
    if keep is None:
        return re.compile(tests)
    kept = "|".join(sorted(re.escape(name) for name in keep)) or "(?!)"
    return re.compile(rf"^{base}/{PACKAGE}/(?!(?:{kept})/)aws_[^/]+/|{tests}")


def main(argv: list[str] | None = None) -> int:
    every = "--all-cdk" in (sys.argv[1:] if argv is None else argv)
    site = Path(sysconfig.get_paths()["purelib"])
    package_dir = site / PACKAGE
    keep = None if every or not package_dir.is_dir() else closure(package_dir, app_modules())
    started = time.perf_counter()
    ok = compileall.compile_dir(str(site), quiet=1, workers=0, rx=skip_pattern(site, keep))
    total = sum(1 for p in package_dir.glob("aws_*") if p.is_dir())
    which = f"all {total}" if keep is None else f"{len(keep)} of {total}"
    print(
        f"compiled the environment's bytecode in {time.perf_counter() - started:.1f} s "
        f"(aws_cdk: {which} service modules; no test folders)"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
