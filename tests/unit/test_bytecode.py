"""Bytecode: the dev install compiles all but test folders (infra_cdk/bytecode.py); the runtime's processes write
their own on first import, whatever PYTHONDONTWRITEBYTECODE says (the CLI and the Makefile)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from infra_cdk.bytecode import skip_pattern

ROOT = Path(__file__).resolve().parents[2]


def test_skip_pattern_leaves_out_test_folders_only(tmp_path):
    site = tmp_path / "tests" / "venv" / "site-packages"  # a checkout under a folder named tests
    skip = skip_pattern(site)
    assert skip.search(f"{site}/pandas/tests/frame/test_api.py")
    assert skip.search(f"{site}/numpy/_core/test/x.py")
    assert not skip.search(f"{site}/pandas/core/frame.py")  # the folders above site-packages do not count
    assert not skip.search(f"{site}/aws_cdk/aws_quicksight/__init__.py")
    assert not skip.search(f"{site}/pytest_tests_helper/x.py")  # a name that merely contains "tests"


def test_the_cli_lets_what_it_starts_write_bytecode(monkeypatch):
    """With PYTHONDONTWRITEBYTECODE set, nothing the CLI starts (LocalStack, MLflow, the synth) would ever keep its
    compiled modules, and the runtime install compiles nothing ahead: every `local up` would compile from source."""
    from diabetes_risk.cli import app
    from localcloud import runtime
    from localcloud.settings import LocalCloudSettings

    monkeypatch.setenv("PYTHONDONTWRITEBYTECODE", "1")
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    result = CliRunner().invoke(app, ["deploy", "--target", "nowhere"])  # any command: refused, but after the setup
    assert result.exit_code == 2
    assert "PYTHONDONTWRITEBYTECODE" not in os.environ and sys.dont_write_bytecode is False
    assert "PYTHONDONTWRITEBYTECODE" not in runtime.localstack_env(LocalCloudSettings())


def test_make_compiles_ahead_for_the_dev_install_only():
    """`make runtime` (demo, up) runs no compile step; `make install` does (make -n: what make would run)."""
    env = {**os.environ, "MAKEFLAGS": ""}
    dev = subprocess.run(
        ["make", "-n", "-W", "pyproject.toml", ".venv/.dev-installed"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert "infra_cdk.bytecode" in dev.stdout, dev.stdout + dev.stderr
    runtime = subprocess.run(
        ["make", "-n", "-W", "pyproject.toml", "runtime"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert runtime.returncode == 0 and "local install" in runtime.stdout, runtime.stdout + runtime.stderr
    assert "bytecode" not in runtime.stdout
    assert "unexport PYTHONDONTWRITEBYTECODE" in (ROOT / "Makefile").read_text()
