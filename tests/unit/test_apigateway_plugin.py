"""The local cloud's API Gateway additions (no LocalStack needed): the Lambda TOKEN authorizer's run — when
the authorizer is called, what its answers mean, the per-token cache — policy evaluation, and throttling."""

from __future__ import annotations

import json

import pytest
from dr_host_executor.apigateway import LambdaAuthorizerHandler, Refusal, TokenBucket, TtlCache, evaluate_policy

BASE = "arn:aws:execute-api:us-east-1:000000000000:api1/prod/"
AUTHORIZER = {
    "id": "auth1",
    "type": "TOKEN",
    "identitySource": "method.request.header.Authorization",
    "identityValidationExpression": r"^Bearer [-0-9A-Za-z_.]+$",
    "authorizerUri": "arn:aws:apigateway:us-east-1:lambda:path/2015-03-31/functions/"
    "arn:aws:lambda:us-east-1:000000000000:function:authz/invocations",
    "authorizerResultTtlInSeconds": 300,
}


def allow(*routes: str, effect: str = "Allow") -> dict:
    return {
        "principalId": "client-1",
        "policyDocument": {
            "Version": "2012-10-17",
            "Statement": [{"Action": "execute-api:Invoke", "Effect": effect, "Resource": [BASE + r for r in routes]}],
        },
        "context": {"client": "clinic-a", "scope": "predict"},
    }


class FakeAuthorizer:
    def __init__(self, answer=None, error: str | None = None, payload: bytes | None = None) -> None:
        self.calls: list[tuple[str, dict, str]] = []
        self.answer, self.error, self.payload = answer, error, payload

    def __call__(self, function_arn, event, source):
        self.calls.append((function_arn, event, source))
        if self.error:
            return "Unhandled", json.dumps({"errorMessage": self.error}).encode()
        return None, self.payload if self.payload is not None else json.dumps(self.answer).encode()


def run(handler, headers, route="POST/predict", authorizer=AUTHORIZER):
    return handler.authorize(authorizer, headers, BASE + route, "api1", "arn:aws:execute-api:src/authorizers/")


def test_an_allowed_token_reaches_the_integration_with_the_authorizer_context():
    fake = FakeAuthorizer(allow("POST/predict"))
    granted = run(LambdaAuthorizerHandler(fake), {"Authorization": "Bearer a.b.c"})
    assert granted == {"client": "clinic-a", "scope": "predict", "principalId": "client-1"}
    ((function_arn, event, source),) = fake.calls
    assert function_arn == "arn:aws:lambda:us-east-1:000000000000:function:authz"
    assert event == {"type": "TOKEN", "authorizationToken": "Bearer a.b.c", "methodArn": BASE + "POST/predict"}
    assert source.endswith("/authorizers/auth1")


@pytest.mark.parametrize("headers", [{}, {"Authorization": ""}, {"Authorization": "Basic x"}])
def test_a_missing_or_malformed_identity_is_401_without_calling_the_authorizer(headers):
    fake = FakeAuthorizer(allow("POST/predict"))
    with pytest.raises(Refusal) as refused:
        run(LambdaAuthorizerHandler(fake), headers)
    assert refused.value.kind == "unauthorized"
    assert fake.calls == []


def test_the_authorizers_unauthorized_error_is_401_and_any_other_error_is_500():
    with pytest.raises(Refusal) as refused:
        run(LambdaAuthorizerHandler(FakeAuthorizer(error="Unauthorized")), {"Authorization": "Bearer x"})
    assert refused.value.kind == "unauthorized"
    with pytest.raises(Refusal) as refused:
        run(LambdaAuthorizerHandler(FakeAuthorizer(error="KeyError: boom")), {"Authorization": "Bearer x"})
    assert refused.value.kind == "config"
    with pytest.raises(Refusal) as refused:
        run(LambdaAuthorizerHandler(FakeAuthorizer(payload=b'{"principalId": "x"}')), {"Authorization": "Bearer x"})
    assert refused.value.kind == "config"  # an answer without a policy


def test_a_policy_that_does_not_allow_the_route_is_403_with_the_context_for_the_error_body():
    handler = LambdaAuthorizerHandler(FakeAuthorizer(allow("GET/model")))
    with pytest.raises(Refusal) as refused:
        run(handler, {"Authorization": "Bearer x"}, "POST/predict")
    assert refused.value.kind == "denied"
    assert refused.value.authorizer_context["scope"] == "predict"
    # the same (cached) answer allows the route it names
    assert run(handler, {"Authorization": "Bearer x"}, "GET/model")["client"] == "clinic-a"


def test_answers_are_cached_per_token_for_the_ttl_and_not_at_all_with_ttl_zero():
    clock = [0.0]
    fake = FakeAuthorizer(allow("POST/predict"))
    handler = LambdaAuthorizerHandler(fake, TtlCache(clock=lambda: clock[0]))
    for _ in range(20):
        run(handler, {"Authorization": "Bearer one"})
    assert len(fake.calls) == 1
    run(handler, {"Authorization": "Bearer two"})
    assert len(fake.calls) == 2  # another token is another cache entry
    clock[0] = 301
    run(handler, {"Authorization": "Bearer one"})
    assert len(fake.calls) == 3  # expired
    uncached = LambdaAuthorizerHandler(fake)
    for _ in range(3):
        run(uncached, {"Authorization": "Bearer one"}, authorizer={**AUTHORIZER, "authorizerResultTtlInSeconds": 0})
    assert len(fake.calls) == 6


def test_an_authorizer_that_is_not_a_token_authorizer_is_a_configuration_error():
    with pytest.raises(Refusal) as refused:
        run(LambdaAuthorizerHandler(FakeAuthorizer()), {"Authorization": "Bearer x"}, authorizer={"type": "REQUEST"})
    assert refused.value.kind == "config"


def test_policy_evaluation_explicit_deny_wins_and_wildcards_match():
    arn = BASE + "POST/predict"
    both = {
        "Statement": [
            {"Action": "execute-api:Invoke", "Effect": "Allow", "Resource": BASE + "*"},
            {"Action": "execute-api:Invoke", "Effect": "Deny", "Resource": [BASE + "POST/*"]},
        ]
    }
    assert evaluate_policy(both, arn) == "Deny"
    assert evaluate_policy(both, BASE + "GET/model") == "Allow"
    assert evaluate_policy({"Statement": []}, arn) == "None"
    other_action = {"Statement": {"Action": "s3:GetObject", "Effect": "Allow", "Resource": "*"}}
    assert evaluate_policy(other_action, arn) == "None"


def test_the_token_bucket_allows_the_burst_then_the_rate():
    clock = [0.0]
    bucket = TokenBucket(clock=lambda: clock[0])
    key = ("api1", "prod")
    assert all(bucket.take(key, rate=2, burst=5) for _ in range(5))
    assert not bucket.take(key, rate=2, burst=5)
    clock[0] = 0.5  # one token back
    assert bucket.take(key, rate=2, burst=5)
    assert not bucket.take(key, rate=2, burst=5)
    assert bucket.take(("api2", "prod"), rate=2, burst=5)  # per API and stage


def test_the_stages_method_settings_become_update_stage_patches():
    from dr_host_executor.apigateway import method_settings_patches

    patches = method_settings_patches(
        [
            {
                "ResourcePath": "/*",
                "HttpMethod": "*",
                "ThrottlingRateLimit": 50,
                "ThrottlingBurstLimit": 100,
                "DataTraceEnabled": False,
            },
            {"ResourcePath": "/predict", "HttpMethod": "POST", "ThrottlingRateLimit": 5},
        ]
    )
    assert patches == [
        {"op": "replace", "path": "/*/*/throttling/rateLimit", "value": "50"},
        {"op": "replace", "path": "/*/*/throttling/burstLimit", "value": "100"},
        {"op": "replace", "path": "/*/*/logging/dataTrace", "value": "false"},
        {"op": "replace", "path": "/~1predict/POST/throttling/rateLimit", "value": "5"},
    ]


def test_cached_answers_are_kept_apart_per_api_and_per_authorizer():
    fake = FakeAuthorizer(allow("POST/predict"))
    handler = LambdaAuthorizerHandler(fake)
    headers = {"Authorization": "Bearer same"}
    handler.authorize(AUTHORIZER, headers, BASE + "POST/predict", "api1", "src/")
    handler.authorize(AUTHORIZER, headers, BASE + "POST/predict", "api1", "src/")
    assert len(fake.calls) == 1
    handler.authorize(AUTHORIZER, headers, BASE + "POST/predict", "api2", "src/")  # another API
    handler.authorize({**AUTHORIZER, "id": "auth2"}, headers, BASE + "POST/predict", "api1", "src/")  # another one
    assert len(fake.calls) == 3


def test_the_cache_is_bounded():
    cache = TtlCache(max_entries=3)
    for i in range(3):
        cache.put(("k", i), {"n": i}, 60)
    cache.put(("k", 3), {"n": 3}, 60)  # full: starts over rather than grow without bound
    assert cache.get(("k", 0)) is None and cache.get(("k", 3)) == {"n": 3}


def test_stage_throttling_applies_the_stage_limits_and_nothing_without_them():
    from dr_host_executor.apigateway import ThrottleHandler

    clock = [0.0]
    handler = ThrottleHandler(TokenBucket(clock=lambda: clock[0]))
    stage = {"methodSettings": {"*/*": {"throttlingRateLimit": 1.0, "throttlingBurstLimit": 2}}}
    assert [handler.allows(stage, "api1", "prod") for _ in range(4)] == [True, True, False, False]
    clock[0] = 1.0
    assert handler.allows(stage, "api1", "prod")
    assert all(handler.allows({"methodSettings": {}}, "api1", "prod") for _ in range(100))
    assert all(handler.allows(None, "api1", "prod") for _ in range(100))


def test_the_buckets_declared_encryption_becomes_put_bucket_encryption():
    from dr_host_executor.cfn_patches import bucket_encryption_request

    model = {
        "BucketName": "b",
        "BucketEncryption": {
            "ServerSideEncryptionConfiguration": [
                {
                    "ServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": "arn:aws:kms:k"},
                    "BucketKeyEnabled": True,
                }
            ]
        },
    }
    assert bucket_encryption_request(model) == {
        "Rules": [
            {
                "ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": "arn:aws:kms:k"},
                "BucketKeyEnabled": True,
            }
        ]
    }
    assert bucket_encryption_request({"BucketName": "b"}) is None
