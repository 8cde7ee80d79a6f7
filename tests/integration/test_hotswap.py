"""`diabetes-risk deploy --hotswap`: a handler change reaches the running local cloud without CloudFormation. The
test ships a copy of functions/ whose /health says so, sees the deployed API answer with it, then ships the real
code back (only the predict function: its neighbours keep their warm environments and event pollers)."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest
import requests

from diabetes_risk.deploy import FUNCTIONS_DIR, hotswap_local
from diabetes_risk.predict_client import local_api_url
from tests.integration.conftest import cli_env

pytestmark = pytest.mark.integration
MARKER = "hotswapped handler"


def health(url: str) -> dict:
    return requests.get(f"{url}/health", timeout=60).json()


def test_a_handler_change_is_live_in_seconds_and_back(local_cloud, deployed, champion_run, tmp_path):
    url = local_api_url(local_cloud.localstack_url, deployed["ApiId"])
    assert health(url).get("detail") != MARKER
    changed = tmp_path / "functions"
    shutil.copytree(FUNCTIONS_DIR, changed, ignore=shutil.ignore_patterns("__pycache__"))
    app = changed / "predict" / "app.py"
    original = 'HealthResponse(status="ok", model_version=model.pointer.model_version)'
    assert original in app.read_text()
    app.write_text(app.read_text().replace(original, original[:-1] + f', detail="{MARKER}")'))

    done = hotswap_local(local_cloud, source=changed, only=("Predict",))
    print(f"hotswap: {done}")
    assert len(done["updated"]) == 1 and "Predict" in done["updated"][0]
    assert health(url)["detail"] == MARKER  # the next request already runs the new code
    again = hotswap_local(local_cloud, source=changed, only=("Predict",))
    assert again["updated"] == [] and again["unchanged"] == done["updated"]  # unchanged code is not shipped again

    proc = subprocess.run(  # and back, the way a developer does it
        [sys.executable, "-m", "diabetes_risk", "deploy", "--hotswap", "--function", "Predict"],
        env=cli_env(local_cloud),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert "hotswapped 1 function(s)" in proc.stdout
    assert health(url).get("detail") != MARKER
