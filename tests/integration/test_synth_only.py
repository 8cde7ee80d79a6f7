"""`deploy --synth-only` with no local cloud running: the real CDK CLI (cdklocal) and app, as `make demo` runs it
beside `local up`. Its assembly and key are what the next deploy picks up (tests/unit/test_localcloud.py)."""

from __future__ import annotations

import json

import pytest
from dr_host_executor.process import free_port

from diabetes_risk.deploy import assembly_holds, kept_assembly, local_context, local_key, synth_local
from localcloud.settings import LocalCloudSettings

pytestmark = pytest.mark.integration


def test_the_synth_needs_no_running_cloud_and_keeps_its_assembly(tmp_path, monkeypatch):
    monkeypatch.setenv("DR_STATE_DIR", str(tmp_path))
    # free ports: nothing listens there
    cloud = LocalCloudSettings(instance="synth-only", localstack_port=free_port(), mlflow_port=free_port())
    result = synth_local(cloud, lambda line: None)
    assert result["assembly"] == "synthesized", result
    assembly, stamp = kept_assembly(cloud)
    template = json.loads((assembly / "DiabetesRisk.template.json").read_text())
    assert any(r["Type"] == "AWS::StepFunctions::StateMachine" for r in template["Resources"].values())
    assert f"mlflow_uri={cloud.mlflow_url}" in local_context(cloud)  # the endpoints come from the settings
    assert stamp.read_text().strip() == local_key(cloud)
    assert assembly_holds(cloud, result["key"])
    assert synth_local(cloud, lambda line: None)["assembly"] == "kept"  # unchanged: not synthesized again
