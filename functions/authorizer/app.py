"""API Gateway TOKEN authorizer: `Authorization: Bearer <JWT>` → an IAM policy for the token's scopes.

Thin: settings validated at cold start, keys cached per container, `auth.tokens` decides. A bad token raises
"Unauthorized" (API Gateway's 401); a good token gets a policy allowing the routes its scopes open, so a
wrong scope is API Gateway's 403. API Gateway caches the answer per token for the authorizer's TTL.
The log names the client and the reason for a refusal, never the token."""

from __future__ import annotations

import os
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from auth import tokens
from auth.keys import JwksCache, KeySourceError, fetch_jwks, is_http_source


class AuthorizerSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DR_AUTH_", extra="ignore")
    issuer: str = Field(min_length=1, description="The `iss` every token must carry")
    jwks: str = Field(description="https://... (Cognito's JWKS) or ssm:/parameter (the local issuer's)")
    clients: dict[str, str] = Field(description='JSON: {"client id": "client name"} of the accepted clients')

    @field_validator("jwks")
    @classmethod
    def _source(cls, value: str) -> str:
        if not (value.startswith("ssm:/") or is_http_source(value)):
            raise ValueError("must be https://..., http://127.0.0.1/... or ssm:/name")
        return value

    @field_validator("clients")
    @classmethod
    def _some(cls, value: dict[str, str]) -> dict[str, str]:
        if not value:
            raise ValueError("at least one client must be registered")
        return value


SETTINGS = AuthorizerSettings()
logger = Logger(service="diabetes-risk-authorizer")
metrics = Metrics(namespace="DiabetesRisk", service="authorizer")
# Tracing is on where POWERTOOLS_TRACE_DISABLED is not true (AWS); off, X-Ray's SDK is never imported (~250 ms).
tracer = (
    None
    if os.environ.get("POWERTOOLS_TRACE_DISABLED", "").lower() in ("1", "true")
    else Tracer(service="diabetes-risk-authorizer")
)
traced = tracer.capture_lambda_handler(capture_response=False) if tracer else (lambda handler: handler)
KEYS = JwksCache(lambda: fetch_jwks(SETTINGS.jwks))


def bearer(header: str | None) -> str:
    scheme, _, token = (header or "").strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise tokens.TokenRejected("no bearer token in the Authorization header")
    return token.strip()


def authorize(authorization: str | None, method_arn: str) -> dict:
    grant = tokens.verify(bearer(authorization), KEYS, SETTINGS.issuer, SETTINGS.clients)
    return tokens.policy(grant, method_arn)


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
@traced
def handler(event: dict, context: Any) -> dict:
    try:
        answer = authorize(event.get("authorizationToken"), event.get("methodArn", ""))
    except tokens.TokenRejected as exc:
        metrics.add_metric(name="Refused", unit=MetricUnit.Count, value=1)
        logger.info("token refused", extra={"reason": str(exc)})
        raise Exception("Unauthorized") from None
    except KeySourceError:
        logger.exception("issuer keys unavailable")
        raise
    metrics.add_metric(name="Authorized", unit=MetricUnit.Count, value=1)
    logger.info("token accepted", extra={"client": answer["context"]["client"], "scope": answer["context"]["scope"]})
    return answer
