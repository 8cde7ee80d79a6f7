"""Run every offline config check on the repository's files (part of `make lint`).

python -m config_checks            # all checks
python -m config_checks --list     # names only
python -m config_checks compose hadolint ...
"""

from __future__ import annotations

import argparse
import functools
import sys
import time
from collections.abc import Callable

from . import checks
from .checks import ROOT, Result, ToolMissing

WORKFLOWS = sorted(p for p in (ROOT / ".github" / "workflows").iterdir() if p.suffix in (".yml", ".yaml"))
DOCKERFILES = [ROOT / "compose" / "localstack.Dockerfile", ROOT / "functions" / "training.Dockerfile"]
SHELL_SCRIPTS = [ROOT / ".ci" / "run"]


@functools.cache
def _synthesized() -> tuple[dict, list[str]]:
    """Both targets' templates (bundling skipped) and cdk-nag's errors: synthesized once per run."""
    from .synth import synthesize

    return synthesize(ROOT / "cdk.out" / "lint")


def _cdk_nag() -> Result:
    errors = _synthesized()[1]
    return Result("cdk-nag", not errors, "\n".join(errors))


CHECKS: dict[str, Callable[[], Result]] = {
    "compose": lambda: checks.compose_config(ROOT / "docker-compose.yml"),
    "compose-policy": lambda: checks.compose_policy(ROOT / "docker-compose.yml"),
    "compose-schema": lambda: checks.compose_schema(ROOT / "docker-compose.yml"),
    "hadolint": lambda: checks.hadolint(DOCKERFILES),
    "workflows-schema": lambda: checks.workflows_schema(WORKFLOWS),
    "dependabot-schema": lambda: checks.dependabot_schema(ROOT / ".github" / "dependabot.yml"),
    "actionlint": lambda: checks.actionlint(WORKFLOWS),
    "zizmor": lambda: checks.zizmor([*WORKFLOWS, ROOT / ".github" / "dependabot.yml"]),
    "shellcheck": lambda: checks.shellcheck(SHELL_SCRIPTS),
    "pre-commit": lambda: checks.pre_commit_config(ROOT / ".pre-commit-config.yaml"),
    "samconfig": lambda: checks.samconfig_keys(ROOT / "samconfig.toml"),
    "sam-allowlist": checks.sam_allowlist_current,
    "cdk-nag": _cdk_nag,
    "cfn-lint": lambda: checks.cfn_lint(list(_synthesized()[0].values())),
    "sam-validate": lambda: checks.sam_validate(_synthesized()[0]["aws"], "default", ROOT / "samconfig.toml"),
    "sam-validate-local": lambda: checks.sam_validate(
        _synthesized()[0]["local"], "localstack", ROOT / "samconfig.toml"
    ),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", help=f"checks to run (default: all): {', '.join(CHECKS)}")
    parser.add_argument("--list", action="store_true", help="print the checks' names and exit")
    args = parser.parse_args(argv)
    if args.list:
        print("\n".join(CHECKS))
        return 0
    unknown = [n for n in args.names if n not in CHECKS]
    if unknown:
        parser.error(f"unknown check(s) {', '.join(unknown)}; choose from {', '.join(CHECKS)}")
    failed = 0
    for name in args.names or CHECKS:
        started = time.perf_counter()
        try:
            result = CHECKS[name]()
        except ToolMissing as exc:
            result = Result(name, False, str(exc))
        took = time.perf_counter() - started
        print(f"{'ok  ' if result.ok else 'FAIL'} {name:<18} {took:5.1f} s", flush=True)
        if not result.ok:
            failed += 1
            print("\n".join(f"     | {line}" for line in result.output.splitlines()[-40:]), flush=True)
    print(f"config checks: {len(args.names or CHECKS) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
