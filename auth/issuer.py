"""The local cloud's token issuer (Cognito's stand-in): a key pair kept in the local cloud itself.

`deploy` calls `ensure_local_issuer` before the stack is deployed: the private key goes to Secrets Manager,
the public JWKS to an SSM parameter the authorizer reads. It is created once and kept, so tokens stay valid
across redeploys. `mint_local` signs a token for a registered client (`diabetes-risk token`).
"""

from __future__ import annotations

import json

from . import tokens
from .keys import new_key_pair


def jwks_parameter(stack: str) -> str:
    return f"/diabetes-risk/{stack}/auth/jwks"


def key_secret(stack: str) -> str:
    return f"diabetes-risk/{stack}/auth/issuer-key"


def local_issuer(stack: str) -> str:
    return f"https://issuer.local.diabetes-risk/{stack}"


class IssuerError(RuntimeError):
    """The local issuer is missing or unusable; the message says what to run."""


def ensure_local_issuer(ssm, secrets, stack: str) -> bool:
    """Create the key pair if the local cloud has none; returns True if it created one."""
    try:
        secrets.describe_secret(SecretId=key_secret(stack))
        ssm.get_parameter(Name=jwks_parameter(stack))
        return False
    except (secrets.exceptions.ResourceNotFoundException, ssm.exceptions.ParameterNotFound):
        pass
    pem, jwks = new_key_pair()
    value = json.dumps({"kid": jwks["keys"][0]["kid"], "private_key_pem": pem.decode()})
    try:
        secrets.create_secret(Name=key_secret(stack), SecretString=value, Description="Diabetes Risk local issuer")
    except secrets.exceptions.ResourceExistsException:
        secrets.put_secret_value(SecretId=key_secret(stack), SecretString=value)
    ssm.put_parameter(Name=jwks_parameter(stack), Value=json.dumps(jwks), Type="String", Overwrite=True)
    return True


def mint_local(
    secrets, stack: str, client: str, clients: dict[str, tuple[str, ...]], scopes: list[str], ttl_s: int = 3600
) -> str:
    """A token for `client` with `scopes`, if the stack registered that client with those scopes (as Cognito
    refuses a scope an app client is not allowed)."""
    if client not in clients:
        raise IssuerError(f"unknown client {client!r}; registered clients: {', '.join(clients)}")
    refused = [s for s in scopes if s not in clients[client]]
    if refused:
        raise IssuerError(
            f"client {client!r} may not have scope {', '.join(refused)}; its scopes: {', '.join(clients[client])}"
        )
    try:
        secret = json.loads(secrets.get_secret_value(SecretId=key_secret(stack))["SecretString"])
    except secrets.exceptions.ResourceNotFoundException as exc:
        raise IssuerError("the local cloud has no token issuer yet: run `diabetes-risk deploy`") from exc
    try:
        return tokens.mint(
            secret["private_key_pem"].encode(), secret["kid"], local_issuer(stack), client, scopes, ttl_s
        )
    except ValueError as exc:
        raise IssuerError(str(exc)) from exc
