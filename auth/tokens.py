"""OAuth 2.0 client-credentials access tokens (JWT, RS256): verify, decide, and (for the local issuer) mint.

The same checks run on both targets. On AWS the issuer is a Cognito user pool (its access tokens carry
`client_id`, `scope` and `token_use`, no `aud`); on the local cloud it is a key pair that `deploy` creates,
and the tokens it mints have the same shape. Light on purpose: PyJWT and cryptography only, no Lambda types.
"""

from __future__ import annotations

import re
import time
import uuid
from dataclasses import dataclass

import jwt

RESOURCE_SERVER = "diabetes-risk"
# Scope (short name) → the API routes it opens, as (method, path without the leading slash).
SCOPES: dict[str, tuple[tuple[str, str], ...]] = {
    "predict": (("POST", "predict"),),
    "model:read": (("GET", "model"),),
}
ALGORITHMS = ["RS256"]
LEEWAY_S = 30  # clock skew between the issuer and the authorizer


def parse_clients(spec: str) -> dict[str, tuple[str, ...]]:
    """`clinic-a=predict+model:read,console=model:read` → each client's allowed scopes (all when none given)."""
    out: dict[str, tuple[str, ...]] = {}
    for part in spec.split(","):
        name, _, scopes = part.strip().partition("=")
        if not re.fullmatch(r"[a-z][a-z0-9-]{1,40}", name):
            raise ValueError(f"client name {name!r}: lowercase letters, digits and '-', 2-41 characters")
        allowed = tuple(scopes.split("+")) if scopes else tuple(SCOPES)
        unknown = [s for s in allowed if s not in SCOPES]
        if unknown:
            raise ValueError(f"client {name}: unknown scope(s) {', '.join(unknown)}; known: {', '.join(SCOPES)}")
        if name in out:
            raise ValueError(f"client {name} is listed twice")
        out[name] = allowed
    return out


class TokenRejected(Exception):
    """The token is missing, malformed, badly signed, expired, from another issuer or for an unknown client.
    The message names which (for the logs); the client only ever sees 401."""


def full_scope(short: str) -> str:
    return f"{RESOURCE_SERVER}/{short}"


@dataclass(frozen=True)
class Grant:
    """What a verified token allows."""

    client_id: str
    client: str  # the client system's name (per-client metrics use it)
    scopes: tuple[str, ...]  # short names: predict, model:read
    expires_at: int


def _shown(value: object) -> str:
    """A caller-controlled header value as the logs may show it: repr'd and short."""
    return repr(value)[:40]


def verify(token: str, key_for, issuer: str, clients: dict[str, str]) -> Grant:
    """Check signature (RS256 only), issuer, expiry, token use and client; return what the token grants.

    `key_for(kid)` returns the issuer's public key for a key id (from its JWKS); `clients` maps the client
    ids this API accepts to their names (Cognito app clients on AWS; the configured names locally)."""
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as exc:
        raise TokenRejected(f"malformed token: {exc}") from exc
    if header.get("alg") not in ALGORITHMS:
        raise TokenRejected(f"algorithm {_shown(header.get('alg'))} not accepted (RS256 only)")
    kid = header.get("kid")
    if not kid:
        raise TokenRejected("token header has no key id (kid)")
    key = key_for(kid)
    if key is None:
        raise TokenRejected(f"unknown signing key {_shown(kid)}")
    try:
        claims = jwt.decode(
            token,
            key,
            algorithms=ALGORITHMS,
            issuer=issuer,
            leeway=LEEWAY_S,
            options={"require": ["exp", "iat", "iss"], "verify_aud": False},
        )
    except jwt.ExpiredSignatureError as exc:
        raise TokenRejected("token expired") from exc
    except jwt.InvalidIssuerError as exc:
        raise TokenRejected("token from another issuer") from exc
    except jwt.PyJWTError as exc:
        raise TokenRejected(f"invalid token: {exc}") from exc
    if claims.get("token_use") != "access":
        raise TokenRejected("not an access token")
    client_id = claims.get("client_id")
    if client_id not in clients:
        raise TokenRejected(f"client {_shown(client_id)} is not registered with this API")
    prefix = f"{RESOURCE_SERVER}/"
    scopes = tuple(s[len(prefix) :] for s in str(claims.get("scope", "")).split() if s.startswith(prefix))
    return Grant(client_id=client_id, client=clients[client_id], scopes=scopes, expires_at=int(claims["exp"]))


def method_base(method_arn: str) -> str:
    """`arn:aws:execute-api:region:account:api/stage/METHOD/path` → `arn:aws:execute-api:region:account:api/stage/`."""
    parts = method_arn.split("/")
    if len(parts) < 3 or not parts[0].startswith("arn:"):
        raise ValueError(f"not an execute-api method ARN: {method_arn!r}")
    return "/".join(parts[:2]) + "/"


def policy(grant: Grant, method_arn: str) -> dict:
    """The IAM policy API Gateway caches for this token: every route the token's scopes open (not only the
    one called), so a cached answer is right for the token's next request to another route."""
    base = method_base(method_arn)
    resources = [f"{base}{method}/{path}" for s in grant.scopes for method, path in SCOPES.get(s, ())]
    statement = (
        {"Action": "execute-api:Invoke", "Effect": "Allow", "Resource": resources}
        if resources
        else {"Action": "execute-api:Invoke", "Effect": "Deny", "Resource": f"{base}*"}
    )
    return {
        "principalId": grant.client_id,
        "policyDocument": {"Version": "2012-10-17", "Statement": [statement]},
        # Reaches the handler as requestContext.authorizer (and the 403 body): names, never the token.
        "context": {"clientId": grant.client_id, "client": grant.client, "scope": " ".join(grant.scopes) or "none"},
    }


def mint(
    private_pem: bytes,
    kid: str,
    issuer: str,
    client_id: str,
    scopes: list[str],
    ttl_s: int = 3600,
    now: float | None = None,
) -> str:
    """A Cognito-shaped access token from the local issuer's key (the local cloud's stand-in for Cognito)."""
    unknown = [s for s in scopes if s not in SCOPES]
    if unknown:
        raise ValueError(f"unknown scope(s) {', '.join(unknown)}; known: {', '.join(SCOPES)}")
    issued = int(now if now is not None else time.time())
    claims = {
        "iss": issuer,
        "sub": client_id,
        "client_id": client_id,
        "token_use": "access",
        "scope": " ".join(full_scope(s) for s in scopes),
        "iat": issued,
        "exp": issued + ttl_s,
        "jti": str(uuid.uuid4()),
    }
    return jwt.encode(claims, private_pem, algorithm="RS256", headers={"kid": kid})
