"""AWS Signature Version 4 for the prediction function's two kinds of request (S3 GET, DynamoDB GetItem).

botocore's signer cost ≈ 40 ms of a cold start to import (`python -X importtime`: botocore.auth 41 ms
cumulative, pulling botocore.compat, urllib3, its HTTP layer); the signature itself is a few HMACs. This follows
AWS's published algorithm (header-based signing, `x-amz-date`, S3's `x-amz-content-sha256`,
`x-amz-security-token`), and the unit tests check every header it produces against botocore's own signer for the
same request and instant.
"""

from __future__ import annotations

import hashlib
import hmac
import urllib.parse
from datetime import UTC, datetime
from typing import NamedTuple

EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


class Credentials(NamedTuple):
    access_key: str
    secret_key: str
    token: str | None = None


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def sign(
    method: str,
    url: str,
    credentials: Credentials,
    region: str,
    service: str,
    headers: dict[str, str] | None = None,
    body: bytes = b"",
    now: datetime | None = None,
) -> dict[str, str]:
    """The headers to send: the given ones plus x-amz-date, (S3) x-amz-content-sha256, the session token and
    Authorization. The host is signed as the URL gives it (urllib's Host header); no query strings. S3 paths are
    signed as sent (S3 does not normalise them); other services' are encoded again."""
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    parts = urllib.parse.urlsplit(url)
    payload_hash = hashlib.sha256(body).hexdigest() if body else EMPTY_SHA256
    out = dict(headers or {})
    out["X-Amz-Date"] = stamp
    if service == "s3":  # S3 requires the payload's hash as a header; the other services take it from the body
        out["X-Amz-Content-SHA256"] = payload_hash
    if credentials.token:
        out["X-Amz-Security-Token"] = credentials.token
    signed = {k.lower().strip(): " ".join(str(v).split()) for k, v in out.items()}
    if parts.query:
        raise ValueError("sign() signs requests without a query string (the readers send none)")
    signed["host"] = parts.netloc  # as urllib sends it in the Host header
    names = sorted(signed)
    path = parts.path or "/"
    if service != "s3":
        path = urllib.parse.quote(path, safe="/~")
    canonical = "\n".join(
        [method, path, "", "".join(f"{n}:{signed[n]}\n" for n in names), ";".join(names), payload_hash]
    )
    scope = f"{stamp[:8]}/{region}/{service}/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", stamp, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    key = _hmac(
        _hmac(_hmac(_hmac(("AWS4" + credentials.secret_key).encode(), stamp[:8]), region), service), "aws4_request"
    )
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    out["Authorization"] = (
        f"AWS4-HMAC-SHA256 Credential={credentials.access_key}/{scope}, "
        f"SignedHeaders={';'.join(names)}, Signature={signature}"
    )
    return out
