"""Client side of the API's tokens: mint one from the local issuer, or get one from Cognito on AWS.

The CLI (`token`, `predict`), the console and the benches use this, so every client of the local API goes
through the same authorizer a clinic system does."""

from __future__ import annotations

import time
from dataclasses import dataclass

import requests

from auth.issuer import IssuerError, mint_local
from auth.tokens import SCOPES, full_scope, parse_clients

DEFAULT_CLIENT = "clinic-demo"
ALL_SCOPES = list(SCOPES)


class TokenError(RuntimeError):
    """No token could be had; the message says why and what to run."""


def local_token(
    cloud,
    client: str = DEFAULT_CLIENT,
    scopes: list[str] | None = None,
    ttl_s: int = 3600,
    outputs: dict[str, str] | None = None,
) -> str:
    """A token from the local cloud's issuer for a client the deployed stack accepts. `outputs`: the stack's, if the
    caller has just read them (one CloudFormation call fewer)."""
    from diabetes_risk.deploy import STACK, DeployError, stack_outputs
    from localcloud.smoke import clients

    try:
        registered = parse_clients((outputs if outputs is not None else stack_outputs(cloud))["ApiClients"])
    except DeployError as exc:
        raise TokenError(str(exc)) from exc
    except (KeyError, ValueError) as exc:
        raise TokenError(f"the deployed stack names no API clients ({exc}): run `diabetes-risk deploy`") from exc
    (secrets,) = clients(cloud, "secretsmanager")
    try:
        return mint_local(secrets, STACK, client, registered, scopes or list(registered.get(client, ())), ttl_s)
    except IssuerError as exc:
        raise TokenError(str(exc)) from exc


def cognito_token(outputs: dict[str, str], client: str, scopes: list[str], cognito=None) -> str:
    """Client credentials at the stack's Cognito token endpoint (the app client's secret read with the caller's
    AWS credentials, as an operator would)."""
    if "UserPoolId" not in outputs or "TokenEndpoint" not in outputs:
        raise TokenError("the stack has no Cognito user pool outputs: deploy with --target aws first")
    if cognito is None:
        import boto3

        cognito = boto3.client("cognito-idp")
    pool = outputs["UserPoolId"]
    found = []
    for page in cognito.get_paginator("list_user_pool_clients").paginate(UserPoolId=pool, MaxResults=60):
        found += [c for c in page["UserPoolClients"] if c["ClientName"] == client]
    if not found:
        raise TokenError(f"no app client named {client!r} in user pool {pool}")
    detail = cognito.describe_user_pool_client(UserPoolId=pool, ClientId=found[0]["ClientId"])["UserPoolClient"]
    try:
        response = requests.post(
            outputs["TokenEndpoint"],
            data={"grant_type": "client_credentials", "scope": " ".join(full_scope(s) for s in scopes)},
            auth=(detail["ClientId"], detail["ClientSecret"]),
            timeout=10,
        )
    except requests.RequestException as exc:
        raise TokenError(f"cannot reach the token endpoint {outputs['TokenEndpoint']}: {exc}") from exc
    if response.status_code != 200:
        raise TokenError(f"the token endpoint refused: {response.status_code} {response.text[:200]}")
    try:
        return response.json()["access_token"]
    except (ValueError, KeyError) as exc:
        raise TokenError(f"the token endpoint answered without an access token: {response.text[:200]}") from exc


@dataclass
class TokenSource:
    """A token that renews itself a minute before it expires (for long-running clients: console, benches)."""

    mint: object  # () -> str
    ttl_s: int = 3600
    _token: str | None = None
    _renew_at: float = 0.0

    def __call__(self) -> str:
        now = time.monotonic()
        if self._token is None or now >= self._renew_at:
            self._token = self.mint()
            self._renew_at = now + max(self.ttl_s - 60, self.ttl_s / 2)
        return self._token
