"""The issuer's signing keys: a JWKS cache for the authorizer, and the local issuer's key pair.

The JWKS comes from the issuer's URL on AWS (Cognito publishes it) or, on the local cloud, from an SSM
parameter that `deploy` writes (`ssm:/name`). It is fetched once per container and again only when a token
names a key id it does not know (at most once a minute), as key rotation requires.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

REFETCH_AFTER_S = 60.0


def is_http_source(source: str) -> bool:
    """https://anything, or plain http only to this machine's loopback (a test issuer)."""
    parsed = urllib.parse.urlsplit(source)
    if parsed.scheme == "https":
        return bool(parsed.hostname)
    return parsed.scheme == "http" and parsed.hostname == "127.0.0.1" and parsed.username is None


class KeySourceError(RuntimeError):
    """The issuer's keys could not be read (the authorizer answers 500 AuthorizerFailure, not 401)."""


def fetch_jwks(source: str, ssm_client=None, timeout: float = 5.0) -> dict:
    if source.startswith("ssm:"):
        if ssm_client is None:
            import boto3

            ssm_client = boto3.client("ssm")
        try:
            value = ssm_client.get_parameter(Name=source[4:])["Parameter"]["Value"]
        except Exception as exc:
            raise KeySourceError(f"cannot read the JWKS parameter {source[4:]}: {exc}") from exc
    elif is_http_source(source):
        try:
            with urllib.request.urlopen(source, timeout=timeout) as response:
                value = response.read().decode()
        except OSError as exc:
            raise KeySourceError(f"cannot fetch the JWKS from {source}: {exc}") from exc
    else:
        raise KeySourceError(f"JWKS source must be https://... or ssm:/name, got {source!r}")
    try:
        jwks = json.loads(value)
        if not isinstance(jwks.get("keys"), list):
            raise ValueError("no 'keys' list")
    except (ValueError, AttributeError) as exc:
        raise KeySourceError(f"the JWKS from {source} is not a key set: {exc}") from exc
    return jwks


class JwksCache:
    """Public keys by key id, loaded lazily and refreshed when an unknown kid shows up."""

    def __init__(self, load: Callable[[], dict], clock: Callable[[], float] = time.monotonic) -> None:
        self._load = load
        self._clock = clock
        self._keys: dict[str, object] = {}
        self._fetched_at: float | None = None
        self._lock = threading.Lock()
        self.fetches = 0

    def _refresh(self) -> None:
        jwks = self._load()
        keys = {}
        for entry in jwks["keys"]:
            if entry.get("kty") == "RSA" and entry.get("kid"):
                keys[entry["kid"]] = jwt.PyJWK.from_dict(entry, algorithm="RS256").key
        self._keys, self._fetched_at = keys, self._clock()
        self.fetches += 1

    def __call__(self, kid: str):
        with self._lock:
            if kid in self._keys:
                return self._keys[kid]
            if self._fetched_at is None or self._clock() - self._fetched_at >= REFETCH_AFTER_S:
                self._refresh()
            return self._keys.get(kid)


def new_key_pair() -> tuple[bytes, dict]:
    """A fresh RSA-2048 key: (private key PEM, its public JWKS)."""
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(private.public_key()))
    public.update(kid=uuid.uuid4().hex, use="sig", alg="RS256")
    return pem, {"keys": [public]}
