"""`deploy --synth-only` with no local cloud running: the real CDK CLI (cdklocal) and app, as `make demo` runs it
beside `local up`. Its assembly and key are what the next deploy picks up (tests/unit/test_localcloud.py)."""

from __future__ import annotations

import json
import socket

import pytest

from diabetes_risk.deploy import assembly_holds, kept_assembly, local_context, synth_key, synth_local
from localcloud.settings import LocalCloudSettings

pytestmark = pytest.mark.integration


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # nothing listens there once the socket is closed


def test_the_synth_needs_no_running_cloud_and_keeps_its_assembly(tmp_path, monkeypatch):
    monkeypatch.setenv("DR_STATE_DIR", str(tmp_path))
    cloud = LocalCloudSettings(instance="synth-only", localstack_port=_closed_port(), mlflow_port=_closed_port())
    result = synth_local(cloud, lambda line: None)
    assert result["assembly"] == "synthesized", result
    assembly, stamp = kept_assembly(cloud)
    template = json.loads((assembly / "DiabetesRisk.template.json").read_text())
    assert any(r["Type"] == "AWS::StepFunctions::StateMachine" for r in template["Resources"].values())
    assert f"mlflow_uri={cloud.mlflow_url}" in local_context(cloud)  # the endpoints come from the settings
    assert stamp.read_text().strip() == synth_key([*local_context(cloud), cloud.region], skip=(cloud.state_dir,))
    assert assembly_holds(cloud, result["key"])
    assert synth_local(cloud, lambda line: None)["assembly"] == "kept"  # unchanged: not synthesized again
