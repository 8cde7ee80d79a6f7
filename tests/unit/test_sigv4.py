"""The hand-made SigV4 signer gives exactly botocore's headers for the same request and instant: S3 GETs (path
and virtual-host style, keys needing encoding, a session token, a port) and a DynamoDB GetItem POST."""

from __future__ import annotations

import datetime as dt
from unittest import mock

import pytest
from botocore.auth import S3SigV4Auth, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials as BotoCredentials

from inference_core.sigv4 import Credentials, sign

NOW = dt.datetime(2026, 12, 1, 4, 30, 15, tzinfo=dt.UTC)


def botocore_headers(method, url, creds, region, service, headers, body) -> dict[str, str]:
    request = AWSRequest(method=method, url=url, data=body or None, headers=dict(headers))
    signer = (S3SigV4Auth if service == "s3" else SigV4Auth)(BotoCredentials(*creds), service, region)
    with mock.patch("botocore.auth.get_current_datetime", return_value=NOW.replace(tzinfo=None)):
        signer.add_auth(request)
    return {k.lower(): v for k, v in request.headers.items()}


CASES = [
    ("GET", "https://bucket.s3.eu-west-1.amazonaws.com/serving/champion.json", "s3", {}, b""),
    ("GET", "http://127.0.0.1:4566/artifacts/models/v12/model.onnx", "s3", {}, b""),
    ("GET", "https://b.s3.us-east-1.amazonaws.com/runs/a%20b/%C3%A9t%C3%A9%2Bx.json", "s3", {}, b""),
    (
        "POST",
        "https://dynamodb.us-east-1.amazonaws.com/",
        "dynamodb",
        {"Content-Type": "application/x-amz-json-1.0", "X-Amz-Target": "DynamoDB_20120810.GetItem"},
        b'{"TableName": "t", "Key": {"entity_id": {"S": "abc"}}, "ConsistentRead": false}',
    ),
]


@pytest.mark.parametrize("token", [None, "SESSION/TOKEN+="])
@pytest.mark.parametrize(("method", "url", "service", "headers", "body"), CASES)
def test_every_header_equals_botocores(method, url, service, headers, body, token):
    creds = ("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", token)
    region = "eu-west-1" if "eu-west-1" in url else "us-east-1"
    signed = sign(method, url, Credentials(*creds), region, service, headers, body, NOW)
    ours = {k.lower(): v for k, v in signed.items()}
    theirs = botocore_headers(method, url, creds, region, service, headers, body)
    assert ours == theirs


def test_a_different_instant_key_or_body_changes_the_signature():
    creds = Credentials("AKID", "SECRET")
    url = "https://dynamodb.us-east-1.amazonaws.com/"
    base = sign("POST", url, creds, "us-east-1", "dynamodb", {}, b"{}", NOW)["Authorization"]
    later = sign("POST", url, creds, "us-east-1", "dynamodb", {}, b"{}", NOW + dt.timedelta(seconds=1))["Authorization"]
    other_key = sign("POST", url, Credentials("AKID", "SECRET2"), "us-east-1", "dynamodb", {}, b"{}", NOW)
    other_body = sign("POST", url, creds, "us-east-1", "dynamodb", {}, b"{ }", NOW)
    assert len({base, later, other_key["Authorization"], other_body["Authorization"]}) == 4


def test_the_light_readers_do_not_import_botocore():
    import subprocess
    import sys

    code = "import sys, inference_core.s3_reader, inference_core.online_features; print('botocore' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "False"
