"""Read an object from S3, SigV4-signed (inference_core.sigv4) over urllib: the model store's only S3 call.

A boto3 client costs ≈ 180 ms of a cold start more than this (it loads S3's service model and endpoint rules
before the first request); the prediction function needs two GETs. Credentials and region come from the
environment Lambda gives every function (and the local cloud gives its functions, with AWS_ENDPOINT_URL);
without them `from_env` returns None and the caller uses a boto3 client as before.
"""

from __future__ import annotations

import io
import os
import urllib.error
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET
from types import SimpleNamespace

from . import light_http
from .sigv4 import Credentials, sign


class NoSuchKey(Exception):
    """The object does not exist (S3's NoSuchKey)."""


class S3ReadError(RuntimeError):
    """S3 answered with an error other than NoSuchKey (the message has its code and status)."""


def _error_code(body: bytes) -> str:
    try:
        return ET.fromstring(body).findtext("Code") or ""
    except ET.ParseError:
        return ""


def credentials_from_env(environ, service: str) -> tuple[Credentials, str, str | None] | None:
    """(credentials, region, endpoint) from the environment Lambda (or the local cloud) gives a function; None
    without them. The endpoint: AWS_ENDPOINT_URL_<SERVICE>, else AWS_ENDPOINT_URL, else the service's own."""
    key, secret = environ.get("AWS_ACCESS_KEY_ID"), environ.get("AWS_SECRET_ACCESS_KEY")
    region = environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION")
    if not (key and secret and region):
        return None
    endpoint = environ.get(f"AWS_ENDPOINT_URL_{service}") or environ.get("AWS_ENDPOINT_URL")
    return Credentials(key, secret, environ.get("AWS_SESSION_TOKEN")), region, endpoint


class S3Reader:
    """`get_object(Bucket=, Key=)` with the shape ModelStore uses from a boto3 client: {"Body", "ETag"}."""

    exceptions = SimpleNamespace(NoSuchKey=NoSuchKey)

    def __init__(
        self,
        credentials: Credentials,
        region: str,
        endpoint: str | None = None,
        timeout: float = 10.0,
        urlopen=light_http.urlopen,
    ) -> None:
        self.credentials, self.region, self.timeout, self._urlopen = credentials, region, timeout, urlopen
        self.endpoint = endpoint.rstrip("/") if endpoint else None

    @classmethod
    def from_env(cls, environ=os.environ) -> S3Reader | None:
        found = credentials_from_env(environ, "S3")
        return cls(*found) if found else None

    def url(self, bucket: str, key: str) -> str:
        path = urllib.parse.quote(key, safe="/~")
        if self.endpoint:  # the local cloud, an S3-compatible server: path style
            return f"{self.endpoint}/{bucket}/{path}"
        return f"https://{bucket}.s3.{self.region}.amazonaws.com/{path}"

    def get_object(self, Bucket: str, Key: str) -> dict:
        url = self.url(Bucket, Key)
        headers = sign("GET", url, self.credentials, self.region, "s3")
        prepared = urllib.request.Request(url, headers=headers, method="GET")
        try:
            with self._urlopen(prepared, timeout=self.timeout) as response:
                return {"Body": io.BytesIO(response.read()), "ETag": response.headers.get("ETag", "")}
        except urllib.error.HTTPError as exc:
            code = _error_code(exc.read())
            if exc.code == 404 and code in ("NoSuchKey", ""):
                raise NoSuchKey(f"s3://{Bucket}/{Key}") from exc
            raise S3ReadError(f"S3 GET s3://{Bucket}/{Key}: HTTP {exc.code} {code}".strip()) from exc
