"""Install LocalStack into its own venv, once: idempotent and cached by a fingerprint of the pins.

LocalStack needs Python 3.13 and dependency pins that clash with the project's own (cryptography,
botocore), so it gets a venv of its own. The host executor plugin is installed into it editable, so an
edit to the executor takes effect on the next `local up`.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

from .settings import PROJECT_ROOT, LocalCloudSettings

REQUIREMENTS = Path(__file__).with_name("localstack-requirements.txt")
EXECUTOR_DIR = Path(__file__).with_name("host_executor")


class InstallError(RuntimeError):
    """Installing the local cloud failed; the message says which step and why."""


def fingerprint() -> str:
    digest = hashlib.sha256(REQUIREMENTS.read_bytes())
    digest.update((EXECUTOR_DIR / "pyproject.toml").read_bytes())
    digest.update(sys.version.encode())
    return digest.hexdigest()


def is_installed(settings: LocalCloudSettings) -> bool:
    marker = settings.localstack_venv / ".dr-fingerprint"
    return marker.exists() and marker.read_text().strip() == fingerprint()


def _uv() -> list[str]:
    """uv if there is one (the Makefile provides it), else pip of the new venv."""
    for candidate in (PROJECT_ROOT / ".state" / "tools" / "bin" / "uv", shutil.which("uv")):
        if candidate and Path(candidate).exists():
            return [str(candidate)]
    return []


def _run(step: str, cmd: list[str], log: Path) -> None:
    with log.open("a") as out:
        out.write(f"$ {' '.join(cmd)}\n")
        out.flush()
        code = subprocess.call(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    if code != 0:
        tail = "".join(log.read_text().splitlines(keepends=True)[-15:])
        raise InstallError(f"{step} failed (exit {code}); last lines of {log}:\n{tail}")


def ensure_localstack(settings: LocalCloudSettings, force: bool = False) -> bool:
    """Make sure the LocalStack venv exists and matches the pins. Returns True if it installed."""
    if not force and is_installed(settings):
        return False
    venv = settings.localstack_venv
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    log = settings.state_dir / "localstack-install.log"
    log.write_text("")
    if venv.exists():
        shutil.rmtree(venv)
    python = venv / "bin" / "python"
    uv = _uv()
    if uv:
        _run(
            "creating the LocalStack venv",
            [*uv, "venv", "--quiet", "--python", sys.executable, str(venv)],
            log,
        )
        # No bytecode ahead: LocalStack writes it on first import (settings.keeps_bytecode), so only the modules a
        # start runs are compiled, not the whole venv (README, "Bytecode on first import"). pip, below, compiles all.
        pip = [*uv, "pip", "install", "--quiet", "--python", str(python)]
    else:
        _run("creating the LocalStack venv", [sys.executable, "-m", "venv", str(venv)], log)
        pip = [str(python), "-m", "pip", "install", "--quiet"]
    _run("installing LocalStack 4.14.0 and its pins", [*pip, "-r", str(REQUIREMENTS)], log)
    _run("installing the host Lambda executor", [*pip, "--no-deps", "-e", str(EXECUTOR_DIR)], log)
    check = subprocess.run(
        [str(python), "-c", "import localstack, dr_host_executor.plugin"],
        capture_output=True,
        text=True,
    )
    if check.returncode != 0:
        raise InstallError(f"LocalStack venv does not import cleanly:\n{check.stderr[-2000:]}")
    (venv / ".dr-fingerprint").write_text(fingerprint())
    return True
