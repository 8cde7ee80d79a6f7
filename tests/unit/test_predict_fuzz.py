"""Property-based fuzzing of the prediction handler: whatever a client sends, the answer is never a 5xx
and every 4xx carries {"error", "details"}. At least 1,000 generated requests per run."""

from __future__ import annotations

import importlib
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from inference_core.schema import FEATURES
from tests.events.loader import FakeContext, api_event
from tests.unit.predict_fixtures import BUCKET, build_champion, publish

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**20), max_value=10**20),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
)
json_values = st.recursive(
    json_scalars,
    lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=8), kids, max_size=3),
    max_leaves=8,
)
plausible = {
    f: st.one_of(st.floats(min_value=-10, max_value=1500, allow_nan=False), st.integers(-5, 500), json_values)
    for f in FEATURES
}
patient = st.fixed_dictionaries({}, optional={**plausible, "extra": json_values, "Glucose": json_values})
bodies = st.one_of(
    patient,
    st.fixed_dictionaries({"patients": st.lists(patient, max_size=4)}),
    st.fixed_dictionaries({"patients": json_values}),
    json_values,
)
raw_bodies = st.one_of(
    bodies.map(json.dumps), st.text(max_size=40), st.just(""), st.just("NaN"), st.just('{"glucose": Infinity}')
)
content_types = st.sampled_from(
    ["application/json", "application/json; charset=utf-8", "text/plain", "application/x-www-form-urlencoded", ""]
)
routes = st.sampled_from(
    [("POST", "/predict")] * 8
    + [("GET", "/health"), ("GET", "/model"), ("GET", "/predict"), ("DELETE", "/model"), ("POST", "/unknown")]
)


CONTEXT = FakeContext("predict", "fuzz")


@pytest.fixture(scope="module")
def api():
    import os

    import boto3
    from moto import mock_aws

    saved = dict(os.environ)
    os.environ.update(
        {
            "DR_ARTIFACTS_BUCKET": BUCKET,
            "AWS_ACCESS_KEY_ID": "x",
            "AWS_SECRET_ACCESS_KEY": "x",
            "AWS_DEFAULT_REGION": "us-east-1",
            "POWERTOOLS_METRICS_DISABLED": "true",
            "POWERTOOLS_LOG_LEVEL": "CRITICAL",
        }
    )
    for key in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        os.environ.pop(key, None)
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket=BUCKET)
        _, features, onnx_bytes, thresholds, explainer = build_champion()
        publish(s3, onnx_bytes, features, thresholds, explainer)
        import predict.app as module

        yield importlib.reload(module)
    os.environ.clear()
    os.environ.update(saved)


COUNT = {"requests": 0, "by_status": {}}


@settings(
    max_examples=1200, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
)
@given(route=routes, raw=raw_bodies, content_type=content_types)
def test_fuzzed_requests_never_get_a_5xx(api, route, raw, content_type):
    method, path = route
    headers = {"Content-Type": content_type} if content_type else {}
    response = api.handler(api_event(method, path, raw_body=raw, headers=headers), CONTEXT)
    status = response["statusCode"]
    COUNT["requests"] += 1
    COUNT["by_status"][status] = COUNT["by_status"].get(status, 0) + 1
    assert status < 500, response
    if status >= 400:
        payload = json.loads(response["body"])
        assert isinstance(payload["error"], str) and isinstance(payload["details"], list)


def test_fuzzing_sent_at_least_1000_requests():
    assert COUNT["requests"] >= 1000, COUNT
    print(f"fuzzing: {COUNT}")
