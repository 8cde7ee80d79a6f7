"""Bytecode: the dev install compiles all but test folders (infra_cdk/bytecode.py); the runtime's processes write
their own on first import, whatever PYTHONDONTWRITEBYTECODE says (the CLI and the Makefile)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tomllib
from pathlib import Path

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


def test_the_console_script_keeps_its_own_bytecode_and_lets_what_it_starts_keep_theirs(tmp_path):
    """With PYTHONDONTWRITEBYTECODE set and nothing compiled ahead, every command would compile typer, rich and the
    CLI from source again, and hand the variable on to the synth. A fresh process, bytecode looked for and written
    under an empty PYTHONPYCACHEPREFIX: the console script's imports land there, and its environment lost the
    variable."""
    prefix = tmp_path / "pyc"
    code = (
        "import os, sys\n"
        "sys.argv = ['diabetes-risk', 'deploy', '--target', 'nowhere']\n"
        "from diabetes_risk.cli_main import main\n"
        "try:\n    main()\nexcept SystemExit as exc:\n    code = exc.code\n"
        "import signal\n"
        "print(signal.getsignal(signal.SIGINT) is signal.default_int_handler)\n"
        "print(code, os.environ.get('PYTHONDONTWRITEBYTECODE'), sys.dont_write_bytecode)\n"
    )
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "PYTHONPYCACHEPREFIX": str(prefix)}
    ignoring_ctrl_c = lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)  # noqa: E731 - as bash starts `cmd &`
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, preexec_fn=ignoring_ctrl_c
    )
    assert proc.stdout.split()[-4:] == ["True", "2", "None", "False"], (
        proc.stdout + proc.stderr
    )  # refused, as it should
    written = [str(path.relative_to(prefix)) for path in prefix.rglob("*.pyc")]
    for package in ("/typer/", "/rich/", "/diabetes_risk/cli/"):  # the CLI's own imports, from the first on
        assert any(package in path for path in written), (package, written[:20])
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["diabetes-risk"] == "diabetes_risk.cli_main:main"  # what the installed command runs


def test_the_local_cloud_and_the_synth_keep_their_bytecode(tmp_path, monkeypatch):
    """Whoever starts them (the CLI, the test session, a bench), the local cloud's processes and CDK's app get an
    environment without PYTHONDONTWRITEBYTECODE."""
    from diabetes_risk.deploy import cdk_env
    from localcloud import runtime
    from localcloud.settings import LocalCloudSettings

    monkeypatch.setenv("PYTHONDONTWRITEBYTECODE", "1")
    monkeypatch.setenv("DR_STATE_DIR", str(tmp_path))
    started = []

    class Proc:
        pid = os.getpid()

    monkeypatch.setattr(runtime.subprocess, "Popen", lambda cmd, env, **kw: started.append(env) or Proc())
    runtime._start("localstack", ["true"], runtime.localstack_env(LocalCloudSettings()), LocalCloudSettings())
    assert started and "PYTHONDONTWRITEBYTECODE" not in started[0] and "SERVICES" in started[0]
    assert "PYTHONDONTWRITEBYTECODE" not in cdk_env({"AWS_REGION": "us-east-1"})
    assert os.environ["PYTHONDONTWRITEBYTECODE"] == "1"  # this process's own setting is left alone


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
