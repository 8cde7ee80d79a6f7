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
MAX_BODY = 512 * 1024  # the handler's DR_MAX_BODY_BYTES default


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


raw_bodies = st.one_of(
    bodies.map(json.dumps),
    st.text(max_size=40),
    st.just(""),
    st.just("NaN"),
    st.just('{"glucose": Infinity}'),
    # deep nesting, as a list or as the value of a feature
    st.integers(10, 5000).map(_nested),
    st.integers(10, 3000).map(lambda d: '{"glucose": ' + _nested(d) + "}"),
    # very large integers (beyond float64 and int64)
    st.integers(10, 5000).map(lambda n: '{"glucose": 1' + "0" * n + "}"),
    st.integers(10, 400).map(lambda n: '{"age": -' + "9" * n + "}"),
    # duplicate keys: JSON allows them; the last one wins, as in most parsers
    st.tuples(st.sampled_from(FEATURES), st.integers(-10, 500), json_values).map(
        lambda t: f'{{"{t[0]}": {t[1]}, "{t[0]}": {json.dumps(t[2])}}}'
    ),
    # bodies near the size limit, on both sides of it
    st.integers(-64, 64).map(lambda d: '{"patients": [' + ",".join(["{}"] * ((MAX_BODY + d) // 3)) + "]}"),
    st.integers(-64, 64).map(lambda d: json.dumps({"glucose": 120, "note": "x" * (MAX_BODY + d - 30)})),
)
raw_bytes = st.one_of(
    st.binary(max_size=64),  # not UTF-8, in general
    st.just(b'\xff\xfe{\x00"\x00g\x00'),  # UTF-16 with a BOM
    st.just('{"glucose": "\u00e9"}'.encode("latin-1")),
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


def check(response: dict) -> int:
    status = response["statusCode"]
    assert status < 500, response
    if status >= 400:
        payload = json.loads(response["body"])
        assert isinstance(payload["error"], str) and isinstance(payload["details"], list)
    return status


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=st.one_of(raw_bodies.map(str.encode), raw_bytes), base64_encoded=st.booleans())
def test_fuzzed_bytes_and_base64_bodies_never_get_a_5xx(api, raw, base64_encoded):
    """What API Gateway passes for binary media types (base64) or for bytes that are not UTF-8 text."""
    import base64

    event = api_event("POST", "/predict", headers={"Content-Type": "application/json"})
    if base64_encoded:
        event["body"], event["isBase64Encoded"] = base64.b64encode(raw).decode(), True
    else:
        event["body"] = raw.decode("utf-8", errors="surrogateescape")
    status = check(api.handler(event, CONTEXT))
    if not base64_encoded and b'"patients": [{}' in raw and len(raw) > MAX_BODY:
        assert status == 413


def test_duplicate_keys_take_the_last_value(api):
    from inference_core.contracts import EXAMPLE_PATIENT

    body = '{"glucose": 5000, ' + json.dumps(EXAMPLE_PATIENT)[1:]  # 5000 is out of range; the later value is not
    response = api.handler(
        api_event("POST", "/predict", raw_body=body, headers={"Content-Type": "application/json"}), CONTEXT
    )
    assert response["statusCode"] == 200, response


@pytest.fixture(scope="module")
def fuzz_counts(api) -> dict:
    """1,200 generated requests, run once for the module: both tests below read the same run, in any order."""
    counts = {"requests": 0, "by_status": {}}

    @settings(max_examples=1200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(route=routes, raw=raw_bodies, content_type=content_types)
    def run(route, raw, content_type):
        method, path = route
        headers = {"Content-Type": content_type} if content_type else {}
        status = check(api.handler(api_event(method, path, raw_body=raw, headers=headers), CONTEXT))
        counts["requests"] += 1
        counts["by_status"][status] = counts["by_status"].get(status, 0) + 1

    run()  # raises with the falsifying example if any request got a 5xx or a malformed error
    return counts


def test_fuzzed_requests_never_get_a_5xx(fuzz_counts):
    assert fuzz_counts["by_status"] and max(fuzz_counts["by_status"]) < 500, fuzz_counts


def test_fuzzing_sent_at_least_1000_requests(fuzz_counts):
    assert fuzz_counts["requests"] >= 1000, fuzz_counts
    assert {200, 400, 415, 422} <= set(fuzz_counts["by_status"]), fuzz_counts  # the fuzzing reached every path
    print(f"fuzzing: {fuzz_counts}")
