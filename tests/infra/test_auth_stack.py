"""The API's authentication and the keys, in the synthesized templates: a TOKEN authorizer on /predict and
/model only, gateway responses in the API's error format, 405 for undeclared methods, Cognito on AWS only,
customer-managed keys with rotation, and each function's key grants limited to the buckets it touches."""

from __future__ import annotations

import json

import pytest
from aws_cdk.assertions import Template


def _functions(template: Template) -> dict[str, dict]:
    """By handler; the AWS target's container-image functions (training) have none and are left out."""
    return {
        f["Properties"]["Handler"]: f
        for f in template.find_resources("AWS::Lambda::Function").values()
        if "Handler" in f["Properties"]
    }


def _role_statements(template: Template, handler: str) -> list[dict]:
    role = _functions(template)[handler]["Properties"]["Role"]["Fn::GetAtt"][0]
    return [
        s
        for p in template.find_resources("AWS::IAM::Policy").values()
        if {"Ref": role} in p["Properties"]["Roles"]
        for s in p["Properties"]["PolicyDocument"]["Statement"]
    ]


def _keys_used(template: Template, handler: str) -> dict[str, set[str]]:
    """Key logical id → KMS actions this function's role may use on it."""
    out: dict[str, set[str]] = {}
    for s in _role_statements(template, handler):
        actions = s["Action"] if isinstance(s["Action"], list) else [s["Action"]]
        if not any(a.startswith("kms:") for a in actions):
            continue
        resources = s["Resource"] if isinstance(s["Resource"], list) else [s["Resource"]]
        for r in resources:
            out.setdefault(r["Fn::GetAtt"][0], set()).update(actions)
    return out


def _key_ids(template: Template) -> dict[str, str]:
    """'data' | 'artifacts' | 'batch' | 'features' → the key's logical id."""
    return {
        k["Properties"]["Description"].split("the ")[1].split(" ")[0]: logical
        for logical, k in template.find_resources("AWS::KMS::Key").items()
    }


@pytest.mark.parametrize("target", ["local", "aws"])
def test_predict_and_model_need_the_token_authorizer_and_health_does_not(stacks, target):
    _, template = stacks[target]
    (authorizer,) = template.find_resources("AWS::ApiGateway::Authorizer").values()
    props = authorizer["Properties"]
    assert props["Type"] == "TOKEN" and props["IdentitySource"] == "method.request.header.Authorization"
    assert props["AuthorizerResultTtlInSeconds"] == 300
    resources = {
        k: r["Properties"]["PathPart"] for k, r in template.find_resources("AWS::ApiGateway::Resource").items()
    }
    methods = {
        (resources[m["Properties"]["ResourceId"]["Ref"]], m["Properties"]["HttpMethod"]): m["Properties"]
        for m in template.find_resources("AWS::ApiGateway::Method").values()
    }
    for route in (("predict", "POST"), ("model", "GET")):
        assert methods[route]["AuthorizationType"] == "CUSTOM", route
        assert "Ref" in methods[route]["AuthorizerId"]
    for route in (("health", "GET"), ("openapi.json", "GET")):
        assert methods[route]["AuthorizationType"] == "NONE", route
    for path, allowed in (("predict", "POST"), ("health", "GET"), ("model", "GET"), ("openapi.json", "GET")):
        other = methods[(path, "ANY")]
        assert other["Integration"]["Type"] == "MOCK"
        # every content type a client may send selects the 405; any other is API Gateway's 415, never a 500
        assert other["Integration"]["PassthroughBehavior"] == "NEVER"
        assert set(other["Integration"]["RequestTemplates"]) >= {"application/json", "text/plain"}
        (response,) = other["Integration"]["IntegrationResponses"]
        assert response["StatusCode"] == "405"
        assert response["ResponseParameters"] == {"method.response.header.Allow": f"'{allowed}'"}
        assert json.loads(response["ResponseTemplates"]["application/json"].replace("$context.httpMethod", "PUT"))[
            "details"
        ][0] == {"field": "method", "message": f"allowed: {allowed}"}


def test_gateway_responses_use_the_api_error_format(stacks):
    _, template = stacks["local"]
    responses = {
        r["Properties"]["ResponseType"]: r["Properties"]
        for r in template.find_resources("AWS::ApiGateway::GatewayResponse").values()
    }
    expected = {
        "UNAUTHORIZED": "401",
        "ACCESS_DENIED": "403",
        "MISSING_AUTHENTICATION_TOKEN": "404",
        "UNSUPPORTED_MEDIA_TYPE": "415",
        "THROTTLED": "429",
        "QUOTA_EXCEEDED": "429",
        "AUTHORIZER_FAILURE": "500",
    }
    for kind, status in expected.items():
        assert responses[kind]["StatusCode"] == status
        body = json.loads(responses[kind]["ResponseTemplates"]["application/json"])
        assert set(body) == {"error", "details", "request_id"} and body["error"]
    for kind in ("DEFAULT_4XX", "DEFAULT_5XX"):  # whatever else API Gateway refuses: same format, its own status
        assert "StatusCode" not in responses[kind]
        assert json.loads(responses[kind]["ResponseTemplates"]["application/json"])["error"]
    assert responses["UNAUTHORIZED"]["ResponseParameters"] == {
        "gatewayresponse.header.WWW-Authenticate": "'Bearer realm=\"diabetes-risk\"'"
    }
    assert responses["THROTTLED"]["ResponseParameters"] == {"gatewayresponse.header.Retry-After": "'1'"}


def test_cognito_issues_the_tokens_on_aws_and_the_local_issuer_on_the_local_cloud(stacks):
    _, aws = stacks["aws"]
    _, local = stacks["local"]
    aws.resource_count_is("AWS::Cognito::UserPool", 1)
    aws.has_resource_properties(
        "AWS::Cognito::UserPoolResourceServer",
        {
            "Identifier": "diabetes-risk",
            "Scopes": [
                {"ScopeName": "predict", "ScopeDescription": "call predict"},
                {"ScopeName": "model:read", "ScopeDescription": "call model:read"},
            ],
        },
    )
    clients = {
        c["Properties"]["ClientName"]: c["Properties"]
        for c in aws.find_resources("AWS::Cognito::UserPoolClient").values()
    }
    assert set(clients) == {"clinic-demo", "console"}
    for c in clients.values():
        assert c["AllowedOAuthFlows"] == ["client_credentials"] and c["GenerateSecret"]

    def scopes(client):
        return sorted(part["Fn::Join"][1][-1].lstrip("/") for part in client["AllowedOAuthScopes"])

    assert scopes(clients["clinic-demo"]) == ["model:read", "predict"]
    assert scopes(clients["console"]) == ["model:read"]  # the console reads the model; it never predicts
    assert local.find_resources("AWS::Cognito::UserPool") == {}
    env = _functions(local)["authorizer.app.handler"]["Properties"]["Environment"]["Variables"]
    assert env["DR_AUTH_JWKS"] == "ssm:/diabetes-risk/DiabetesRisk/auth/jwks"
    assert json.loads(env["DR_AUTH_CLIENTS"]) == {"clinic-demo": "clinic-demo", "console": "console"}
    # the local authorizer reads its JWKS parameter and nothing else
    reads = [s for s in _role_statements(local, "authorizer.app.handler") if s["Action"] == "ssm:GetParameter"]
    assert len(reads) == 1 and "parameter/diabetes-risk/DiabetesRisk/auth/jwks" in json.dumps(reads[0]["Resource"])


@pytest.mark.parametrize("target", ["local", "aws"])
def test_tracing_is_active_on_aws_and_off_locally(stacks, target):
    _, template = stacks[target]
    for handler in ("predict.app.handler", "authorizer.app.handler", "batch_score.app.handler"):
        props = _functions(template)[handler]["Properties"]
        assert props["Environment"]["Variables"]["POWERTOOLS_TRACE_DISABLED"] == (
            "true" if target == "local" else "false"
        )
        assert props.get("TracingConfig", {}).get("Mode", "PassThrough") == (
            "PassThrough" if target == "local" else "Active"
        )


@pytest.mark.parametrize("target", ["local", "aws"])
def test_patient_data_buckets_and_the_table_use_rotating_customer_keys(stacks, target):
    _, template = stacks[target]
    keys = _key_ids(template)
    assert set(keys) == {"data", "artifacts", "batch", "features"}
    for logical in keys.values():
        assert template.find_resources("AWS::KMS::Key")[logical]["Properties"]["EnableKeyRotation"] is True
    by_prefix = {
        b["Properties"]["LoggingConfiguration"]["LogFilePrefix"]: b["Properties"]["BucketEncryption"][
            "ServerSideEncryptionConfiguration"
        ][0]
        for b in template.find_resources("AWS::S3::Bucket").values()
        if "LoggingConfiguration" in b["Properties"]
    }
    for kind in ("data", "artifacts", "batch"):
        rule = by_prefix[f"{kind}/"]
        assert rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "aws:kms"
        assert rule["ServerSideEncryptionByDefault"]["KMSMasterKeyID"]["Fn::GetAtt"][0] == keys[kind]
        assert rule["BucketKeyEnabled"] is True
    tables = {
        t["Properties"]["KeySchema"][0]["AttributeName"]: t["Properties"]
        for t in template.find_resources("AWS::DynamoDB::Table").values()
    }
    assert set(tables) == {"id", "entity_id"}  # idempotency records; the online feature store (patient data)
    for key, kind in (("id", "batch"), ("entity_id", "features")):
        sse = tables[key]["SSESpecification"]
        assert sse["SSEEnabled"] is True and sse["SSEType"] == "KMS"
        assert sse["KMSMasterKeyId"]["Fn::GetAtt"][0] == keys[kind]


def test_each_function_may_use_only_the_keys_of_what_it_touches(stacks):
    _, template = stacks["local"]
    keys = _key_ids(template)
    decrypt_only = {"kms:Decrypt"}

    def used(handler):
        return {kind: _keys_used(template, handler).get(logical) for kind, logical in keys.items()}

    predict = used("predict.app.handler")
    # features: the online store's table (its own key), read only; never the data bucket's key
    assert predict == {"data": None, "artifacts": decrypt_only, "batch": None, "features": decrypt_only}
    batch = used("batch_score.app.handler")
    assert batch["artifacts"] == decrypt_only
    assert {"kms:Encrypt", "kms:GenerateDataKey*"} <= batch["data"]  # valid rows into the offline store
    assert batch["features"] is None  # the online store is Feast's to write
    assert {"kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey*"} <= batch["batch"]
    validate = used("training_steps.handlers.validate")
    assert validate["data"] == decrypt_only and validate["batch"] is None
    assert "kms:GenerateDataKey*" in validate["artifacts"]
    for handler in ("authorizer.app.handler", "metrics_bridge.app.handler", "training_steps.start.handler"):
        assert _keys_used(template, handler) == {}, handler


def test_batch_score_is_not_granted_bucket_version_listing(stacks):
    _, template = stacks["local"]
    actions = {
        a
        for s in _role_statements(template, "batch_score.app.handler")
        for a in (s["Action"] if isinstance(s["Action"], list) else [s["Action"]])
    }
    assert "s3:ListBucketVersions" not in actions and "s3:ListBucket" in actions
