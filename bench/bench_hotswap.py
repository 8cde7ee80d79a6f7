"""A handler change into the running local cloud: `deploy --hotswap` (UpdateFunctionCode of the changed functions)
against the full `deploy` (cdklocal, CloudFormation) it saves, in the same run on a fresh local cloud. The change is a
real one: a copy of functions/ with one line added to the predict handler, timed until the API answers from it.
Ends with one JSON line."""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from pathlib import Path

import requests
from clouds import fresh_cloud

from diabetes_risk.deploy import FUNCTIONS_DIR, deploy_local, hotswap_local
from diabetes_risk.predict_client import local_api_url
from localcloud import runtime

MARKER = "bench hotswap"


def main() -> None:
    settings = fresh_cloud("bench-hotswap")
    print(f"starting a local cloud on {settings.localstack_url} ...", flush=True)
    runtime.up(settings, progress=lambda *_: None)
    try:
        print("first deploy (bootstrap included) ...", flush=True)
        first = deploy_local(settings, on_line=lambda _: None)
        url = local_api_url(settings.localstack_url, first["outputs"]["ApiId"])
        changed = Path(tempfile.mkdtemp(prefix="bench-hotswap-")) / "functions"
        shutil.copytree(FUNCTIONS_DIR, changed, ignore=shutil.ignore_patterns("__pycache__"))
        app = changed / "predict" / "app.py"
        line = 'HealthResponse(status="unavailable", detail=str(exc))'  # no model is trained here: the 503 path
        assert line in app.read_text(), "the predict handler changed: update the bench's edit"
        app.write_text(app.read_text().replace(line, f'HealthResponse(status="unavailable", detail="{MARKER}")'))

        print("hotswap: every function, then the predict change until the API answers from it ...", flush=True)
        everything = hotswap_local(settings)  # the stack's zips differ from ours: all are shipped once
        unchanged = hotswap_local(settings)
        t0 = time.perf_counter()
        predict = hotswap_local(settings, source=changed, only=("Predict",))
        while requests.get(f"{url}/health", timeout=60).json().get("detail") != MARKER:
            if time.perf_counter() - t0 > 120:
                raise RuntimeError("the hotswapped handler never answered within 120 s")
            time.sleep(0.05)
        live_s = time.perf_counter() - t0

        print("baseline: a full deploy with no change ...", flush=True)
        t0 = time.perf_counter()
        again = deploy_local(settings, on_line=lambda _: None, fresh_synth=True)  # synth included, as it was measured
        full_s = time.perf_counter() - t0
    finally:
        runtime.down(settings)
    print(
        json.dumps(
            {
                "bench": "hotswap",
                "hotswap_predict_until_live_s": round(live_s, 2),
                "hotswap_predict_update_s": predict["seconds"],
                "hotswap_all_functions_s": everything["seconds"],
                "functions": len(everything["updated"]),
                "hotswap_nothing_changed_s": unchanged["seconds"],
                "baseline": {
                    "full_deploy_no_change_s": round(full_s, 1),
                    "first_deploy_s": first["timings"].get("deploy_s"),
                    "bootstrap_s": first["timings"].get("bootstrap_s"),
                    "redeploy_timings": again["timings"],
                },
                "ratio": round(full_s / live_s, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
