"""The model store's light S3 reader: signed GETs (inference_core.sigv4) over urllib, boto3's answer shape, and
S3's errors mapped the way the model store expects. No network: urlopen is a stand-in that records."""

from __future__ import annotations

import io
import subprocess
import sys
import urllib.error
from email.message import Message
from pathlib import Path

import pytest

from inference_core.s3_reader import NoSuchKey, S3Reader, S3ReadError
from inference_core.sigv4 import Credentials

ROOT = Path(__file__).resolve().parents[2]


class Answer:
    def __init__(self, body: bytes, etag: str = '"abc"') -> None:
        self._body, self.headers = body, {"ETag": etag}

    def read(self) -> bytes:
        return self._body

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


class Opener:
    def __init__(self, answer=None, error: tuple[int, bytes] | None = None) -> None:
        self.requests, self.answer, self.error = [], answer, error

    def __call__(self, request, timeout):
        self.requests.append(request)
        if self.error:
            status, body = self.error
            raise urllib.error.HTTPError(request.full_url, status, "error", Message(), io.BytesIO(body))
        return self.answer


def test_a_get_is_signed_and_answered_in_boto3s_shape():
    opener = Opener(Answer(b'{"model": 1}', '"e1"'))
    reader = S3Reader(Credentials("AKID", "SECRET", "TOKEN"), "eu-west-1", urlopen=opener)
    answer = reader.get_object(Bucket="bucket", Key="serving/champion.json")
    assert answer["Body"].read() == b'{"model": 1}' and answer["ETag"] == '"e1"'
    (request,) = opener.requests
    assert request.full_url == "https://bucket.s3.eu-west-1.amazonaws.com/serving/champion.json"
    headers = {k.lower(): v for k, v in request.header_items()}
    assert headers["authorization"].startswith("AWS4-HMAC-SHA256 Credential=AKID/")
    assert "/eu-west-1/s3/aws4_request" in headers["authorization"]
    assert headers["x-amz-security-token"] == "TOKEN" and headers["x-amz-date"]
    assert headers["x-amz-content-sha256"]


def test_an_endpoint_url_means_path_style_and_keys_are_quoted():
    opener = Opener(Answer(b"x"))
    reader = S3Reader(Credentials("a", "b"), "us-east-1", "http://127.0.0.1:4566/", urlopen=opener)
    reader.get_object(Bucket="artifacts", Key="models/v 1/model.onnx")
    assert opener.requests[0].full_url == "http://127.0.0.1:4566/artifacts/models/v%201/model.onnx"


def test_s3_errors_become_no_such_key_or_a_named_read_error():
    missing = b"<Error><Code>NoSuchKey</Code><Message>The specified key does not exist.</Message></Error>"
    reader = S3Reader(Credentials("a", "b"), "us-east-1", urlopen=Opener(error=(404, missing)))
    with pytest.raises(reader.exceptions.NoSuchKey):
        reader.get_object(Bucket="b", Key="k")
    denied = b"<Error><Code>AccessDenied</Code></Error>"
    reader = S3Reader(Credentials("a", "b"), "us-east-1", urlopen=Opener(error=(403, denied)))
    with pytest.raises(S3ReadError, match="HTTP 403 AccessDenied"):
        reader.get_object(Bucket="b", Key="k")
    no_bucket = b"<Error><Code>NoSuchBucket</Code></Error>"
    reader = S3Reader(Credentials("a", "b"), "us-east-1", urlopen=Opener(error=(404, no_bucket)))
    with pytest.raises(S3ReadError, match="NoSuchBucket"):  # not "no model yet": a deployment error
        reader.get_object(Bucket="b", Key="k")
    assert issubclass(NoSuchKey, Exception) and not issubclass(NoSuchKey, S3ReadError)


def test_from_env_needs_credentials_and_a_region():
    env = {"AWS_ACCESS_KEY_ID": "a", "AWS_SECRET_ACCESS_KEY": "b", "AWS_REGION": "eu-west-1"}
    reader = S3Reader.from_env(env)
    assert reader is not None and reader.region == "eu-west-1" and reader.endpoint is None
    local = S3Reader.from_env({**env, "AWS_ENDPOINT_URL": "http://127.0.0.1:4566"})
    assert local.endpoint == "http://127.0.0.1:4566"
    assert S3Reader.from_env({**env, "AWS_ENDPOINT_URL_S3": "http://s3.local"}).endpoint == "http://s3.local"
    assert S3Reader.from_env({"AWS_REGION": "eu-west-1"}) is None  # no credentials: boto3's chain decides


def test_the_model_store_loads_through_the_reader():
    """ModelStore against the reader, with a stand-in S3 that serves a real champion: same behaviour as boto3."""
    from inference_core.model_store import ModelStore
    from tests.unit.predict_fixtures import build_champion, publish

    class Objects(dict):
        def put_object(self, Bucket, Key, Body):
            self[Key] = Body

    objects = Objects()
    _, features, onnx_bytes, thresholds, explainer = build_champion()
    publish(objects, onnx_bytes, features, thresholds, explainer)

    def serve(request, timeout):
        key = request.full_url.split("/artifacts-test/", 1)[1]
        if key not in objects:
            raise urllib.error.HTTPError(
                request.full_url, 404, "nf", Message(), io.BytesIO(b"<Error><Code>NoSuchKey</Code></Error>")
            )
        return Answer(objects[key], f'"{hash(objects[key])}"')

    reader = S3Reader(Credentials("a", "b"), "us-east-1", "http://127.0.0.1:1", urlopen=serve)
    model = ModelStore(reader, "artifacts-test").get()
    assert model.pointer.model_version == "1"


def test_with_the_light_reader_predict_imports_neither_boto3_nor_the_openapi_machinery():
    code = (
        "import sys; sys.path.insert(0, 'functions'); import predict.app as a; "
        "print(type(a.STORE.s3).__name__, 'boto3' in sys.modules, "
        "'aws_lambda_powertools.event_handler.openapi.params' in sys.modules); "
        "a.openapi_document(); print('aws_lambda_powertools.event_handler.openapi.params' in sys.modules)"
    )
    env = {
        "PATH": "/usr/bin:/bin",
        "DR_ARTIFACTS_BUCKET": "bucket",
        "DR_S3_CLIENT": "light",
        "AWS_ACCESS_KEY_ID": "a",
        "AWS_SECRET_ACCESS_KEY": "b",
        "AWS_REGION": "us-east-1",
        "POWERTOOLS_TRACE_DISABLED": "true",
    }
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, env=env, check=True
    ).stdout.split()
    assert out == ["S3Reader", "False", "False", "True"]
