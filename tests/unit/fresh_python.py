"""Run a snippet in a new interpreter at the project root: what a cold start imports, from nothing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def in_a_fresh_python(code: str, **env: str) -> str:
    """What `code` prints (stripped) in a new interpreter at the project root, with a bare environment plus `env`."""
    environ = {"PATH": "/usr/bin", "AWS_DEFAULT_REGION": "us-east-1", **env}
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True, env=environ
    )
    return done.stdout.strip()
