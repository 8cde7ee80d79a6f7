"""Test-wide setup: handlers import as Lambda sees them (`training_steps.handlers`), CDK stays quiet."""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "functions"))
os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "1")

import infra_cdk  # noqa: E402, F401 - before anything imports aws_cdk: its service modules on first use, as in a synth
