"""`apigateway:dr` — LocalStack community's REST API Gateway with what AWS does and community leaves out:

- **Lambda TOKEN authorizers** (AWS::ApiGateway::Authorizer, and their run on each request): the identity
  source header is checked against the validation expression, the authorizer Lambda is invoked with AWS's
  event (`type`, `authorizationToken`, `methodArn`), an "Unauthorized" error is a 401, the returned policy is
  evaluated against the method ARN (explicit Deny, then Allow, else 403), and the answer is cached per token
  for the authorizer's `authorizerResultTtlInSeconds`. The authorizer's `principalId` and `context` become
  `requestContext.authorizer` for the integration, as on AWS.
- **Stage throttling**: the stage's `*/*` method settings (rate and burst) as a token bucket; over the limit
  is a 429 THROTTLED gateway response.
- **Gateway responses as configured**: the status code, the `application/json` template (rendered with
  `$context`) and the header parameters, where community renders only the status.

Selected with PROVIDER_OVERRIDE_APIGATEWAY=dr; everything else is LocalStack's next-gen provider.
"""

from __future__ import annotations

import contextlib
import fnmatch
import json
import logging
import re
import threading
import time
from pathlib import Path

LOG = logging.getLogger(__name__)
_FUNCTION_IN_URI = re.compile(r"/functions/(arn:[^/]+)/invocations")


class TtlCache:
    """Authorizer answers by (authorizer id, identity), each valid for the authorizer's TTL."""

    def __init__(self, clock=time.monotonic, max_entries: int = 10_000) -> None:
        self._clock = clock
        self._entries: dict[tuple, tuple[float, dict]] = {}
        self._lock = threading.Lock()
        self._max = max_entries

    def get(self, key: tuple) -> dict | None:
        with self._lock:
            hit = self._entries.get(key)
            if hit is None:
                return None
            if hit[0] <= self._clock():
                del self._entries[key]
                return None
            return hit[1]

    def put(self, key: tuple, answer: dict, ttl_s: float) -> None:
        if ttl_s <= 0:
            return
        with self._lock:
            if len(self._entries) >= self._max:
                self._entries.clear()
            self._entries[key] = (self._clock() + ttl_s, answer)


class TokenBucket:
    """Requests per second with a burst, per (api, stage)."""

    def __init__(self, clock=time.monotonic) -> None:
        self._clock = clock
        self._state: dict[tuple, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, key: tuple, rate: float, burst: float) -> bool:
        with self._lock:
            now = self._clock()
            tokens, at = self._state.get(key, (burst, now))
            tokens = min(burst, tokens + (now - at) * rate)
            if tokens < 1:
                self._state[key] = (tokens, now)
                return False
            self._state[key] = (tokens - 1, now)
            return True


def _as_list(value) -> list:
    return value if isinstance(value, list) else [value]


def _matches(patterns, value: str) -> bool:
    return any(fnmatch.fnmatchcase(value, p) for p in _as_list(patterns))


def evaluate_policy(policy: dict, method_arn: str) -> str:
    """'Deny', 'Allow' or 'None' for execute-api:Invoke on `method_arn`, by IAM's rule: explicit deny wins."""
    decision = "None"
    for statement in _as_list((policy or {}).get("Statement", [])):
        actions = statement.get("Action", [])
        if not _matches(actions, "execute-api:Invoke") and not _matches(actions, "execute-api:*"):
            continue
        if not _matches(statement.get("Resource", []), method_arn):
            continue
        if statement.get("Effect") == "Deny":
            return "Deny"
        if statement.get("Effect") == "Allow":
            decision = "Allow"
    return decision


def method_arn(context) -> str:
    resource_path = context.resource["path"].lstrip("/")
    return (
        f"arn:aws:execute-api:{context.region}:{context.account_id}:{context.api_id}/{context.stage}/"
        f"{context.request.method}/{resource_path}"
    )


def _invoke_authorizer(function_arn: str, event: dict, source_arn: str) -> tuple[str | None, bytes]:
    from localstack.aws.connect import connect_to
    from localstack.utils.aws import arns
    from localstack.utils.aws.client_types import ServicePrincipal

    parts = arns.parse_arn(function_arn)
    client = connect_to(aws_access_key_id=parts["account"], region_name=parts["region"]).lambda_.request_metadata(
        service_principal=ServicePrincipal.apigateway, source_arn=source_arn
    )
    result = client.invoke(FunctionName=function_arn, Payload=json.dumps(event), InvocationType="RequestResponse")
    return result.get("FunctionError"), result["Payload"].read()


class Refusal(Exception):
    """Why a request is refused before its integration: `unauthorized` (401), `denied` (403) or `config` (500)."""

    def __init__(self, kind: str, authorizer_context: dict | None = None) -> None:
        super().__init__(kind)
        self.kind = kind
        self.authorizer_context = authorizer_context


class LambdaAuthorizerHandler:
    """Runs in the `preprocess_request` step, after routing and before API key validation (as on AWS)."""

    def __init__(self, invoke=_invoke_authorizer, cache: TtlCache | None = None) -> None:
        self.invoke = invoke
        self.cache = cache or TtlCache()
        self.invocations = 0

    def __call__(self, chain, context, response) -> None:
        from localstack.services.apigateway.next_gen.execute_api.gateway_response import (
            AccessDeniedError,
            AuthorizerConfigurationError,
            UnauthorizedError,
        )

        method = context.resource_method or {}
        if method.get("authorizationType") != "CUSTOM":
            return
        arn = method_arn(context)
        source = f"arn:aws:execute-api:{context.region}:{context.account_id}:{context.api_id}/authorizers/"
        try:
            context.context_variables["authorizer"] = self.authorize(
                context.deployment.rest_api.authorizers.get(method.get("authorizerId") or ""),
                context.invocation_request["headers"],
                arn,
                context.api_id,
                source,
            )
        except Refusal as refusal:
            if refusal.authorizer_context is not None:
                context.context_variables["authorizer"] = refusal.authorizer_context
            if refusal.kind == "unauthorized":
                raise UnauthorizedError("Unauthorized") from None
            if refusal.kind == "denied":
                raise AccessDeniedError("User is not authorized to access this resource") from None
            raise AuthorizerConfigurationError("Internal server error") from None

    def authorize(self, authorizer: dict | None, headers, arn: str, api_id: str, source_prefix: str) -> dict:
        """The authorizer context for an allowed request; raises Refusal otherwise."""
        if not authorizer or authorizer.get("type") != "TOKEN":
            LOG.warning("authorizer missing or not of type TOKEN: %s", authorizer)
            raise Refusal("config")
        header = (authorizer.get("identitySource") or "").removeprefix("method.request.header.")
        token = headers.get(header) or ""
        expression = authorizer.get("identityValidationExpression")
        if not token or (expression and not re.fullmatch(expression, token)):
            raise Refusal("unauthorized")  # AWS does not call the authorizer for these
        key = (api_id, authorizer["id"], token)
        answer = self.cache.get(key)
        if answer is None:
            answer = self._ask(authorizer, token, arn, source_prefix + authorizer["id"])
            self.cache.put(key, answer, float(authorizer.get("authorizerResultTtlInSeconds", 300)))
        granted = {
            **{k: str(v) for k, v in (answer.get("context") or {}).items()},
            "principalId": answer.get("principalId"),
        }
        if evaluate_policy(answer.get("policyDocument"), arn) != "Allow":
            raise Refusal("denied", granted)
        return granted

    def _ask(self, authorizer: dict, token: str, arn: str, source: str) -> dict:
        found = _FUNCTION_IN_URI.search(authorizer.get("authorizerUri") or "")
        if not found:
            raise Refusal("config")
        self.invocations += 1
        try:
            error, payload = self.invoke(
                found.group(1), {"type": "TOKEN", "authorizationToken": token, "methodArn": arn}, source
            )
        except Exception as exc:
            LOG.warning("authorizer %s failed: %s", found.group(1), exc)
            raise Refusal("config") from exc
        if error:
            try:
                message = json.loads(payload).get("errorMessage")
            except (ValueError, AttributeError):
                message = None
            raise Refusal("unauthorized" if message == "Unauthorized" else "config")
        try:
            answer = json.loads(payload)
            if not isinstance(answer.get("policyDocument"), dict):
                raise ValueError("no policyDocument")
        except (ValueError, AttributeError) as exc:
            raise Refusal("config") from exc
        return answer


class ThrottleHandler:
    """The stage's default method throttling (`*/*`), as a token bucket per API and stage."""

    def __init__(self, bucket: TokenBucket | None = None) -> None:
        self.bucket = bucket or TokenBucket()

    def __call__(self, chain, context, response) -> None:
        from localstack.services.apigateway.next_gen.execute_api.gateway_response import ThrottledError

        if not self.allows(context.stage_configuration, context.api_id, context.stage):
            raise ThrottledError("Too Many Requests")

    def allows(self, stage_configuration: dict | None, api_id: str, stage: str) -> bool:
        """False when this request is over the stage's `*/*` rate (a stage without limits allows everything)."""
        settings = ((stage_configuration or {}).get("methodSettings") or {}).get("*/*") or {}
        rate, burst = settings.get("throttlingRateLimit"), settings.get("throttlingBurstLimit")
        if rate is None or burst is None or float(rate) < 0:
            return True
        return self.bucket.take((api_id, stage), float(rate), float(burst))


def render_gateway_response(exception, context) -> tuple[int, dict, str] | None:
    """The configured gateway response for this error (status, headers, JSON body from its template)."""
    from localstack.services.apigateway.next_gen.execute_api.gateway_response import get_gateway_response_or_default
    from localstack.services.apigateway.next_gen.execute_api.template_mapping import (
        ApiGatewayVtlTemplate,
        MappingTemplateInput,
        MappingTemplateVariables,
    )

    configured = get_gateway_response_or_default(exception.type, context.deployment.rest_api.gateway_responses)
    template = (configured.get("responseTemplates") or {}).get("application/json")
    if not template:
        return None
    status = int(configured.get("statusCode") or exception.status_code or 500)
    variables = MappingTemplateVariables(
        context=context.context_variables, stageVariables=context.stage_variables or {}, input=MappingTemplateInput()
    )
    body, _ = ApiGatewayVtlTemplate().render_response(template, variables, context.context_variable_overrides)
    headers = {"Content-Type": "application/json", "x-amzn-ErrorType": exception.code}
    for name, value in (configured.get("responseParameters") or {}).items():
        if name.startswith("gatewayresponse.header.") and value.startswith("'") and value.endswith("'"):
            headers[name.removeprefix("gatewayresponse.header.")] = value[1:-1]
    return status, headers, body


def _patch_gateway_responses() -> None:
    from localstack.http import Response
    from localstack.services.apigateway.next_gen.execute_api.handlers.gateway_exception import GatewayExceptionHandler

    original = GatewayExceptionHandler.create_exception_response
    if getattr(original, "_dr", False):
        return

    def create_exception_response(self, exception, context):
        try:
            rendered = render_gateway_response(exception, context)
        except Exception:
            LOG.warning("gateway response template for %s failed", exception.type, exc_info=True)
            rendered = None
        if rendered is None:
            return original(self, exception, context)
        status, headers, body = rendered
        return Response(response=body, headers=headers, status=status)

    create_exception_response._dr = True
    GatewayExceptionHandler.create_exception_response = create_exception_response


_SETTING_PATHS = {
    "ThrottlingRateLimit": "throttling/rateLimit",
    "ThrottlingBurstLimit": "throttling/burstLimit",
    "MetricsEnabled": "metrics/enabled",
    "DataTraceEnabled": "logging/dataTrace",
    "LoggingLevel": "logging/loglevel",
}


def method_settings_patches(method_settings: list[dict]) -> list[dict]:
    """CloudFormation's Stage `MethodSettings` as UpdateStage patch operations (community's Stage resource
    provider drops them, so the stage's throttling never applied)."""
    patches = []
    for setting in method_settings or []:
        path_ = setting.get("ResourcePath") or "/*"
        resource = "*" if path_ == "/*" else path_.replace("/", "~1")  # "/predict" → "~1predict", as AWS writes it
        prefix = f"/{resource}/{setting.get('HttpMethod') or '*'}"
        for key, path in _SETTING_PATHS.items():
            if setting.get(key) is not None:
                value = setting[key]
                patches.append(
                    {
                        "op": "replace",
                        "path": f"{prefix}/{path}",
                        "value": str(value).lower() if isinstance(value, bool) else str(value),
                    }
                )
    return patches


AUTHORIZERS = LambdaAuthorizerHandler()
THROTTLE = ThrottleHandler()


def install() -> None:
    """Add the handlers to LocalStack's REST API chain (once)."""
    from localstack.services.apigateway.next_gen.execute_api import handlers

    chain = handlers.preprocess_request.handlers
    for extra in (THROTTLE, AUTHORIZERS):
        if extra not in chain:
            chain.append(extra)
    _patch_gateway_responses()


# --- CloudFormation: AWS::ApiGateway::Authorizer (community has no resource provider for it) -----------------
def authorizer_resource_provider():
    from localstack.services.cloudformation.resource_provider import (
        OperationStatus,
        ProgressEvent,
        ResourceProvider,
    )

    fields = (
        "RestApiId",
        "Name",
        "Type",
        "AuthorizerUri",
        "AuthorizerCredentials",
        "AuthorizerResultTtlInSeconds",
        "IdentitySource",
        "IdentityValidationExpression",
        "ProviderARNs",
        "AuthType",
    )

    class ApiGatewayAuthorizerProvider(ResourceProvider):
        TYPE = "AWS::ApiGateway::Authorizer"
        SCHEMA = json.loads(Path(__file__).with_name("aws_apigateway_authorizer.schema.json").read_text())

        def create(self, request):
            model = request.desired_state
            params = {k[0].lower() + k[1:]: model[k] for k in fields if model.get(k) is not None}
            params["providerARNs"] = params.pop("providerARNs", None) or []
            if not params["providerARNs"]:
                del params["providerARNs"]
            if "authorizerResultTtlInSeconds" in params:
                params["authorizerResultTtlInSeconds"] = int(params["authorizerResultTtlInSeconds"])
            created = request.aws_client_factory.apigateway.create_authorizer(**params)
            model["AuthorizerId"] = created["id"]
            return ProgressEvent(status=OperationStatus.SUCCESS, resource_model=model)

        def read(self, request):
            model = request.desired_state
            found = request.aws_client_factory.apigateway.get_authorizer(
                restApiId=model["RestApiId"], authorizerId=model["AuthorizerId"]
            )
            for key in fields:
                name = key[0].lower() + key[1:]
                if found.get(name) is not None:
                    model[key] = found[name]
            return ProgressEvent(status=OperationStatus.SUCCESS, resource_model=model)

        def delete(self, request):
            model = request.desired_state
            with contextlib.suppress(Exception):
                request.aws_client_factory.apigateway.delete_authorizer(
                    restApiId=model["RestApiId"], authorizerId=model["AuthorizerId"]
                )
            return ProgressEvent(status=OperationStatus.SUCCESS, resource_model=model)

        def update(self, request):
            model, previous = request.desired_state, request.previous_state
            model["AuthorizerId"] = previous["AuthorizerId"]
            patches = [
                {"op": "replace", "path": f"/{k[0].lower() + k[1:]}", "value": str(model[k])}
                for k in fields
                if k not in ("RestApiId", "ProviderARNs") and model.get(k) is not None
            ]
            request.aws_client_factory.apigateway.update_authorizer(
                restApiId=model["RestApiId"], authorizerId=model["AuthorizerId"], patchOperations=patches
            )
            return ProgressEvent(status=OperationStatus.SUCCESS, resource_model=model)

    return ApiGatewayAuthorizerProvider
