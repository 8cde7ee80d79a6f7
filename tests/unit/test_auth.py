"""Access tokens: verification (each check fed the bad case), the policy per scope, the JWKS cache, the local
issuer, and the authorizer function (settings at cold start, 401 as API Gateway expects, no token in logs)."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
import time

import boto3
import jwt
import pytest
from moto import mock_aws

from auth import tokens
from auth.issuer import IssuerError, ensure_local_issuer, jwks_parameter, key_secret, local_issuer, mint_local
from auth.keys import JwksCache, KeySourceError, fetch_jwks, is_http_source, new_key_pair
from tests.events.loader import load_event

ISSUER = "https://issuer.test/pool"
CLIENTS = {"id-clinic": "clinic-a", "id-console": "console"}
ARN = "arn:aws:execute-api:us-east-1:123456789012:abcdef1234/prod/POST/predict"


@pytest.fixture(scope="module")
def keypair():
    pem, jwks = new_key_pair()
    kid = jwks["keys"][0]["kid"]
    return pem, jwks, kid


@pytest.fixture(scope="module")
def keys(keypair):
    _, jwks, _ = keypair
    return JwksCache(lambda: jwks)


def token(keypair, **overrides) -> str:
    pem, _, kid = keypair
    params = dict(issuer=ISSUER, client_id="id-clinic", scopes=["predict"], ttl_s=600)
    params.update(overrides)
    return tokens.mint(pem, kid, **params)


def test_a_valid_token_grants_its_client_and_scopes(keypair, keys):
    grant = tokens.verify(token(keypair, scopes=["predict", "model:read"]), keys, ISSUER, CLIENTS)
    assert grant.client_id == "id-clinic" and grant.client == "clinic-a"
    assert grant.scopes == ("predict", "model:read")


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda kp: token(kp, ttl_s=-120), "expired"),
        (lambda kp: token(kp, issuer="https://evil.test/pool"), "another issuer"),
        (lambda kp: token(kp, client_id="id-stranger"), "not registered"),
        (lambda kp: "not.a.jwt", "malformed"),
        (lambda kp: token(kp)[:-4] + "AAAA", "invalid token"),  # signature tampered
    ],
)
def test_each_check_refuses_its_bad_case(keypair, keys, make, reason):
    with pytest.raises(tokens.TokenRejected, match=reason):
        tokens.verify(make(keypair), keys, ISSUER, CLIENTS)


def test_a_token_signed_by_another_key_with_the_same_kid_is_refused(keypair, keys):
    other_pem, _ = new_key_pair()
    forged = tokens.mint(other_pem, keypair[2], ISSUER, "id-clinic", ["predict"])
    with pytest.raises(tokens.TokenRejected, match="invalid token"):
        tokens.verify(forged, keys, ISSUER, CLIENTS)


def test_only_rs256_is_accepted_so_the_public_key_cannot_sign_hs256(keypair, keys):
    now = int(time.time())
    claims = {"iss": ISSUER, "client_id": "id-clinic", "token_use": "access", "iat": now, "exp": now + 60}
    forged = jwt.encode(claims, "a-shared-secret-of-thirty-two-bytes!", algorithm="HS256", headers={"kid": keypair[2]})
    with pytest.raises(tokens.TokenRejected, match="RS256 only"):
        tokens.verify(forged, keys, ISSUER, CLIENTS)
    unsigned = jwt.encode(claims, None, algorithm="none", headers={"kid": keypair[2]})
    with pytest.raises(tokens.TokenRejected, match="RS256 only"):
        tokens.verify(unsigned, keys, ISSUER, CLIENTS)


def test_id_tokens_and_tokens_without_kid_are_refused(keypair, keys):
    pem, _, kid = keypair
    now = int(time.time())
    claims = {"iss": ISSUER, "client_id": "id-clinic", "token_use": "id", "iat": now, "exp": now + 60}
    with pytest.raises(tokens.TokenRejected, match="not an access token"):
        tokens.verify(jwt.encode(claims, pem, algorithm="RS256", headers={"kid": kid}), keys, ISSUER, CLIENTS)
    with pytest.raises(tokens.TokenRejected, match="no key id"):
        tokens.verify(jwt.encode(claims, pem, algorithm="RS256"), keys, ISSUER, CLIENTS)


def test_scopes_of_another_resource_server_grant_nothing(keypair, keys):
    pem, _, kid = keypair
    now = int(time.time())
    claims = {
        "iss": ISSUER,
        "client_id": "id-clinic",
        "token_use": "access",
        "scope": "other-api/predict predict",
        "iat": now,
        "exp": now + 60,
    }
    grant = tokens.verify(jwt.encode(claims, pem, algorithm="RS256", headers={"kid": kid}), keys, ISSUER, CLIENTS)
    assert grant.scopes == ()


def test_the_policy_allows_every_route_of_the_scopes_and_nothing_else():
    grant = tokens.Grant("id-clinic", "clinic-a", ("predict",), 0)
    answer = tokens.policy(grant, ARN)
    (statement,) = answer["policyDocument"]["Statement"]
    assert statement["Effect"] == "Allow"
    assert statement["Resource"] == ["arn:aws:execute-api:us-east-1:123456789012:abcdef1234/prod/POST/predict"]
    assert answer["context"] == {"clientId": "id-clinic", "client": "clinic-a", "scope": "predict"}
    both = tokens.policy(
        tokens.Grant("id", "c", ("predict", "model:read"), 0), ARN.replace("POST/predict", "GET/model")
    )
    assert len(both["policyDocument"]["Statement"][0]["Resource"]) == 2
    none = tokens.policy(tokens.Grant("id", "c", (), 0), ARN)["policyDocument"]["Statement"][0]
    assert none["Effect"] == "Deny" and none["Resource"].endswith("/prod/*")


def test_a_malformed_method_arn_is_refused():
    with pytest.raises(ValueError, match="method ARN"):
        tokens.method_base("predict")


def test_minting_refuses_unknown_scopes(keypair):
    with pytest.raises(ValueError, match="unknown scope"):
        token(keypair, scopes=["admin"])


def test_the_jwks_is_fetched_once_and_again_only_for_an_unknown_kid_at_most_once_a_minute(keypair):
    _, jwks, kid = keypair
    clock = [0.0]
    loads = []
    cache = JwksCache(lambda: loads.append(1) or jwks, clock=lambda: clock[0])
    assert cache(kid) is not None and cache(kid) is not None
    assert len(loads) == 1
    assert cache("unknown") is None  # just fetched: no refetch storm
    assert len(loads) == 1
    clock[0] = 61.0
    assert cache("unknown") is None
    assert len(loads) == 2


def test_jwks_sources(aws_env, keypair):
    _, jwks, _ = keypair
    with mock_aws():
        ssm = boto3.client("ssm", region_name="us-east-1")
        ssm.put_parameter(Name="/x/jwks", Value=json.dumps(jwks), Type="String")
        assert fetch_jwks("ssm:/x/jwks", ssm) == jwks
        with pytest.raises(KeySourceError, match="cannot read the JWKS parameter /x/missing"):
            fetch_jwks("ssm:/x/missing", ssm)
        ssm.put_parameter(Name="/x/bad", Value='{"no": "keys"}', Type="String")
        with pytest.raises(KeySourceError, match="not a key set"):
            fetch_jwks("ssm:/x/bad", ssm)
    with pytest.raises(KeySourceError, match="must be https"):
        fetch_jwks("file:///etc/passwd")


def test_the_local_issuer_is_created_once_and_mints_tokens_the_authorizer_accepts(aws_env):
    with mock_aws():
        ssm = boto3.client("ssm", region_name="us-east-1")
        secrets = boto3.client("secretsmanager", region_name="us-east-1")
        assert ensure_local_issuer(ssm, secrets, "S") is True
        first = secrets.get_secret_value(SecretId=key_secret("S"))["SecretString"]
        assert ensure_local_issuer(ssm, secrets, "S") is False  # kept: earlier tokens stay valid
        assert secrets.get_secret_value(SecretId=key_secret("S"))["SecretString"] == first
        registered = {"clinic-a": ("predict",)}
        value = mint_local(secrets, "S", "clinic-a", registered, ["predict"])
        keys = JwksCache(lambda: fetch_jwks(f"ssm:{jwks_parameter('S')}", ssm))
        grant = tokens.verify(value, keys, local_issuer("S"), {"clinic-a": "clinic-a"})
        assert grant.scopes == ("predict",)
        with pytest.raises(IssuerError, match="unknown client 'stranger'; registered clients: clinic-a"):
            mint_local(secrets, "S", "stranger", registered, ["predict"])
        with pytest.raises(IssuerError, match="may not have scope model:read; its scopes: predict"):
            mint_local(secrets, "S", "clinic-a", registered, ["model:read"])
        with pytest.raises(IssuerError, match="run `diabetes-risk deploy`"):
            mint_local(secrets, "Other", "clinic-a", registered, ["predict"])


# --- the authorizer function ---------------------------------------------------------------------------
@pytest.fixture
def authorizer(monkeypatch, aws_env, keypair):
    _, jwks, _ = keypair
    monkeypatch.setenv("DR_AUTH_ISSUER", ISSUER)
    monkeypatch.setenv("DR_AUTH_JWKS", "ssm:/auth/jwks")
    monkeypatch.setenv("DR_AUTH_CLIENTS", json.dumps(CLIENTS))
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
    monkeypatch.syspath_prepend("functions")
    with mock_aws():
        boto3.client("ssm", region_name="us-east-1").put_parameter(
            Name="/auth/jwks", Value=json.dumps(jwks), Type="String"
        )
        sys.modules.pop("authorizer.app", None)
        yield importlib.import_module("authorizer.app")


class Context:
    function_name = "authorizer"
    memory_limit_in_mb = 256
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:authorizer"
    aws_request_id = "req-1"


def test_the_authorizer_answers_a_good_token_with_its_policy(authorizer, keypair, caplog):
    good = token(keypair, scopes=["predict"])
    answer = authorizer.handler(load_event("apigw_token_authorizer", authorizationToken=f"Bearer {good}"), Context())
    assert answer["principalId"] == "id-clinic"
    assert answer["policyDocument"]["Statement"][0]["Effect"] == "Allow"
    assert answer["context"]["client"] == "clinic-a"
    logged = [str(r.__dict__) for r in caplog.records]
    assert any("token accepted" in line and "clinic-a" in line for line in logged)
    assert not any(good in line or good.split(".")[2] in line for line in logged)  # never the token


@pytest.mark.parametrize("header", ["", "Basic abc", "Bearer ", "Bearer not.a.jwt"])
def test_the_authorizer_raises_unauthorized_for_anything_else(authorizer, header, caplog):
    with pytest.raises(Exception, match=r"^Unauthorized$"):
        authorizer.handler(load_event("apigw_token_authorizer", authorizationToken=header), Context())
    assert any(r.getMessage() == "token refused" and getattr(r, "reason", "") for r in caplog.records)


def test_the_authorizer_refuses_bad_settings_at_cold_start(monkeypatch, aws_env):
    monkeypatch.setenv("DR_AUTH_ISSUER", ISSUER)
    monkeypatch.setenv("DR_AUTH_JWKS", "file:///keys.json")
    monkeypatch.setenv("DR_AUTH_CLIENTS", "{}")
    monkeypatch.syspath_prepend("functions")
    sys.modules.pop("authorizer.app", None)
    with pytest.raises(Exception, match="jwks") as info:
        importlib.import_module("authorizer.app")
    assert "clients" in str(info.value)


# What the functions' settings need at import, in a clean subprocess (no credentials, no network).
FUNCTION_ENV = {
    "PATH": "/usr/bin:/bin",
    "POWERTOOLS_TRACE_DISABLED": "true",
    "DR_AUTH_ISSUER": ISSUER,
    "DR_AUTH_JWKS": "ssm:/x",
    "DR_AUTH_CLIENTS": '{"a": "a"}',
    "DR_ARTIFACTS_BUCKET": "bucket",
    "DR_BATCH_BUCKET": "batch",
    "DR_IDEMPOTENCY_TABLE": "table",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@pytest.mark.parametrize("module", ["authorizer.app", "predict.app", "batch_score.app"])
def test_with_tracing_off_the_xray_sdk_is_never_imported(module):
    code = (
        f"import sys; sys.path.insert(0, 'functions'); import {module}; "
        f"print('aws_xray_sdk' in sys.modules, {module}.tracer is None)"
    )
    env = dict(FUNCTION_ENV)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True).stdout
    assert out.split() == ["False", "True"]
    env["POWERTOOLS_TRACE_DISABLED"] = "false"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True).stdout
    assert out.split() == ["True", "False"]


def test_auth_and_the_authorizer_stay_light():
    """The dependency rule of the `auth` room: PyJWT and cryptography, no boto3 at import (only the local JWKS
    parameter needs it, lazily); the authorizer adds Powertools and pydantic, nothing from the model side."""
    code = (
        "import sys; sys.path.insert(0, 'functions'); import auth.tokens, auth.keys, auth.issuer; "
        "print(' '.join(sorted({m.split('.')[0] for m in sys.modules}))); import authorizer.app; "
        "print(' '.join(sorted({m.split('.')[0] for m in sys.modules})))"
    )
    env = FUNCTION_ENV
    auth_only, with_authorizer = (
        set(line.split())
        for line in subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
        ).stdout.splitlines()
    )
    heavy = {"numpy", "pandas", "sklearn", "onnxruntime", "mlflow", "feast", "training", "inference_core", "xgboost"}
    assert not auth_only & (heavy | {"boto3", "botocore", "aws_lambda_powertools"})
    assert {"jwt", "cryptography"} <= auth_only
    assert not with_authorizer & heavy


def test_a_token_naming_an_unknown_key_is_refused_not_an_error(keypair, keys):
    pem, _, _ = keypair
    with pytest.raises(tokens.TokenRejected, match="unknown signing key 'rotated-away'"):
        tokens.verify(tokens.mint(pem, "rotated-away", ISSUER, "id-clinic", ["predict"]), keys, ISSUER, CLIENTS)


@pytest.mark.parametrize("missing", ["exp", "iat", "iss"])
def test_tokens_without_a_required_claim_are_refused(keypair, keys, missing):
    pem, _, kid = keypair
    now = int(time.time())
    claims = {"iss": ISSUER, "client_id": "id-clinic", "token_use": "access", "iat": now, "exp": now + 60}
    del claims[missing]
    with pytest.raises(tokens.TokenRejected, match=missing):
        tokens.verify(jwt.encode(claims, pem, algorithm="RS256", headers={"kid": kid}), keys, ISSUER, CLIENTS)


def test_caller_controlled_header_values_reach_the_logs_short():
    with pytest.raises(tokens.TokenRejected) as refused:
        tokens.verify(jwt.encode({"a": 1}, "k" * 32, algorithm="HS256", headers={"kid": "x" * 5000}), None, ISSUER, {})
    assert len(str(refused.value)) < 120


def test_jwks_entries_that_are_not_rsa_signing_keys_are_ignored(keypair):
    _, jwks, kid = keypair
    mixed = {
        "keys": [{"kty": "oct", "kid": "shared", "k": "c2VjcmV0"}, {**jwks["keys"][0], "kid": None}, jwks["keys"][0]]
    }
    cache = JwksCache(lambda: mixed)
    assert cache(kid) is not None
    assert cache("shared") is None


@pytest.mark.parametrize(
    ("source", "ok"),
    [
        ("https://cognito-idp.us-east-1.amazonaws.com/pool/.well-known/jwks.json", True),
        ("http://127.0.0.1:9000/jwks.json", True),
        ("http://127.0.0.1.evil.example/jwks.json", False),
        ("http://127.0.0.1@evil.example/jwks.json", False),
        ("http://localhost/jwks.json", False),
        ("http://issuer.example/jwks.json", False),
        ("file:///etc/passwd", False),
    ],
)
def test_only_https_or_loopback_http_is_a_jwks_source(source, ok):
    assert is_http_source(source) is ok


def test_the_jwks_is_fetched_over_http_from_the_issuer(keypair):
    import http.server
    import threading

    _, jwks, _ = keypair

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = json.dumps(jwks).encode() if self.path == "/jwks.json" else b"nope"
            self.send_response(200 if self.path == "/jwks.json" else 404)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        base = f"http://127.0.0.1:{server.server_port}"
        assert fetch_jwks(f"{base}/jwks.json") == jwks
        with pytest.raises(KeySourceError, match="cannot fetch the JWKS"):
            fetch_jwks(f"{base}/missing.json")
    finally:
        server.shutdown()


@pytest.mark.parametrize(
    ("spec", "error"),
    [
        ("clinic-a", None),
        ("clinic-a=predict,console=model:read", None),
        ("Clinic", "lowercase"),
        ("clinic-a=admin", "unknown scope"),
        ("clinic-a,clinic-a", "twice"),
    ],
)
def test_client_specs(spec, error):
    if error:
        with pytest.raises(ValueError, match=error):
            tokens.parse_clients(spec)
    else:
        parsed = tokens.parse_clients(spec)
        assert parsed.get("clinic-a") in (("predict", "model:read"), ("predict",))


def test_refused_tokens_never_reach_the_logs(authorizer, keypair, caplog):
    expired = token(keypair, ttl_s=-120)
    with pytest.raises(Exception, match=r"^Unauthorized$"):
        authorizer.handler(load_event("apigw_token_authorizer", authorizationToken=f"Bearer {expired}"), Context())
    logged = [str(r.__dict__) for r in caplog.records]
    assert any("token expired" in line for line in logged)
    assert not any(expired.split(".")[2] in line or expired.split(".")[1] in line for line in logged)


def test_a_token_source_renews_before_expiry():
    from diabetes_risk.access import TokenSource

    minted = []
    source = TokenSource(lambda: minted.append(1) or f"t{len(minted)}", ttl_s=120)
    assert source() == "t1" and source() == "t1"
    source._renew_at = 0  # as if a minute before expiry had come
    assert source() == "t2"


def test_cognito_client_credentials(aws_env):
    import responses

    from diabetes_risk.access import TokenError, cognito_token

    with mock_aws():
        idp = boto3.client("cognito-idp", region_name="us-east-1")
        pool = idp.create_user_pool(PoolName="p")["UserPool"]["Id"]
        idp.create_user_pool_client(UserPoolId=pool, ClientName="clinic-a", GenerateSecret=True)
        outputs = {"UserPoolId": pool, "TokenEndpoint": "https://auth.example/oauth2/token"}
        with responses.RequestsMock() as mocked:
            mocked.post(outputs["TokenEndpoint"], json={"access_token": "abc", "token_type": "Bearer"})
            assert cognito_token(outputs, "clinic-a", ["predict"], idp) == "abc"
            sent = mocked.calls[0].request
            assert "grant_type=client_credentials" in sent.body and "diabetes-risk%2Fpredict" in sent.body
            assert sent.headers["Authorization"].startswith("Basic ")
        with responses.RequestsMock() as mocked:
            mocked.post(outputs["TokenEndpoint"], status=400, json={"error": "invalid_scope"})
            with pytest.raises(TokenError, match="refused: 400"):
                cognito_token(outputs, "clinic-a", ["predict"], idp)
        with pytest.raises(TokenError, match="no app client named 'stranger'"):
            cognito_token(outputs, "stranger", ["predict"], idp)
        with pytest.raises(TokenError, match="deploy with --target aws"):
            cognito_token({}, "clinic-a", ["predict"], idp)
