"""The prediction API's authentication on the local cloud, end to end through API Gateway: the Lambda TOKEN
authorizer (401/403 in the API's error format, its answers cached per token), per-client metrics, objects
encrypted with the project's keys, each function's key and bucket grants, and schemathesis's conformance checks
run against the deployed API with a token."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from moto.iam.access_control import IAMPolicy, PermissionResult

from auth import tokens
from auth.issuer import local_issuer
from auth.keys import new_key_pair
from diabetes_risk.deploy import STACK
from diabetes_risk.predict_client import local_api_url
from inference_core.contracts import EXAMPLE_PATIENT
from observability.prometheus_api import scalar
from tests.integration.conftest import cli_env

pytestmark = pytest.mark.integration
HERE = Path(__file__).parent


@pytest.fixture(scope="module")
def api_url(local_cloud, deployed, champion_run) -> str:
    return local_api_url(local_cloud.localstack_url, deployed["ApiId"])


@pytest.fixture(scope="module")
def issuer_key(local_cloud):
    """The local issuer's own key (as `diabetes-risk token` reads it), to mint edge-case tokens."""
    from auth.issuer import key_secret
    from localcloud.smoke import clients

    (secrets,) = clients(local_cloud, "secretsmanager")
    secret = json.loads(secrets.get_secret_value(SecretId=key_secret(STACK))["SecretString"])
    return secret["private_key_pem"].encode(), secret["kid"]


def bearer(value: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {value}"}


def wait_until(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def settled(prom: str, expr: str, quiet_s: float = 4.0, timeout: float = 60.0) -> float:
    """The value once it has not changed for `quiet_s` (samples of earlier requests arrive within seconds)."""
    value, since, deadline = scalar(prom, expr) or 0.0, time.monotonic(), time.monotonic() + timeout
    while time.monotonic() - since < quiet_s and time.monotonic() < deadline:
        time.sleep(0.5)
        now = scalar(prom, expr) or 0.0
        if now != value:
            value, since = now, time.monotonic()
    return value


def test_no_token_is_401_in_the_api_error_format(api_url):
    response = requests.post(f"{api_url}/predict", json=EXAMPLE_PATIENT, timeout=30)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="diabetes-risk"'
    body = response.json()
    assert body["error"] == "missing, invalid or expired access token"
    assert body["details"][0]["field"] == "Authorization"
    assert requests.get(f"{api_url}/model", timeout=30).status_code == 401
    assert requests.get(f"{api_url}/health", timeout=30).status_code == 200  # open


def test_expired_forged_and_wrong_issuer_tokens_are_401(api_url, issuer_key):
    pem, kid = issuer_key
    issuer = local_issuer(STACK)
    expired = tokens.mint(pem, kid, issuer, "clinic-demo", ["predict"], ttl_s=60, now=time.time() - 3600)
    wrong_issuer = tokens.mint(pem, kid, "https://issuer.example/elsewhere", "clinic-demo", ["predict"])
    other_pem, _ = new_key_pair()
    forged = tokens.mint(other_pem, kid, issuer, "clinic-demo", ["predict"])  # right kid, wrong key
    stranger = tokens.mint(pem, kid, issuer, "not-registered", ["predict"])
    for name, value in {
        "expired": expired,
        "wrong issuer": wrong_issuer,
        "forged": forged,
        "stranger": stranger,
    }.items():
        response = requests.post(f"{api_url}/predict", json=EXAMPLE_PATIENT, headers=bearer(value), timeout=30)
        assert response.status_code == 401, (name, response.text)
        assert response.json()["error"] == "missing, invalid or expired access token"


def test_a_token_without_the_routes_scope_is_403_naming_its_scopes(api_url, issuer_key):
    pem, kid = issuer_key
    model_only = tokens.mint(pem, kid, local_issuer(STACK), "clinic-demo", ["model:read"])
    response = requests.post(f"{api_url}/predict", json=EXAMPLE_PATIENT, headers=bearer(model_only), timeout=30)
    assert response.status_code == 403, response.text
    assert response.json()["details"] == [{"field": "scope", "message": "the token's scopes: model:read"}]
    assert requests.get(f"{api_url}/model", headers=bearer(model_only), timeout=30).status_code == 200


def test_valid_tokens_are_answered_counted_per_client_and_the_authorizer_runs_once_per_token(
    api_url, local_cloud, issuer_key
):
    pem, kid = issuer_key
    prom = local_cloud.prometheus_url
    window = "[10m]"
    per_client = f'sum(sum_over_time(diabetes_risk_client_requests{{client="clinic-demo"}}{window}))'
    authorized = f'sum(sum_over_time(diabetes_risk_authorized{{service="authorizer"}}{window}))'
    before_client, before_auth = settled(prom, per_client), settled(prom, authorized)  # earlier tests' samples in
    token = tokens.mint(pem, kid, local_issuer(STACK), "clinic-demo", ["predict"])  # a new token: one new answer
    for _ in range(12):
        response = requests.post(f"{api_url}/predict", json=EXAMPLE_PATIENT, headers=bearer(token), timeout=30)
        assert response.status_code == 200, response.text
    wait_until(lambda: (scalar(prom, per_client) or 0.0) >= before_client + 12, 60, "12 requests of clinic-demo")
    # one authorizer call for the twelve requests: API Gateway's cache answered the other eleven
    wait_until(lambda: (scalar(prom, authorized) or 0.0) >= before_auth + 1, 60, "the authorizer's one call")
    time.sleep(3)  # anything late would show now
    assert (scalar(prom, authorized) or 0.0) == before_auth + 1
    assert (scalar(prom, per_client) or 0.0) == before_client + 12


def test_cli_predict_and_token_send_a_token_on_the_local_cloud(local_cloud, api_url):
    env = cli_env(local_cloud)
    proc = subprocess.run(
        [sys.executable, "-m", "diabetes_risk", "predict", "--json", json.dumps(EXAMPLE_PATIENT)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["predictions"][0]["risk_band"]
    proc = subprocess.run(
        [sys.executable, "-m", "diabetes_risk", "token", "--scope", "model:read"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    (value,) = proc.stdout.split()
    assert requests.get(f"{api_url}/model", headers=bearer(value), timeout=30).status_code == 200
    proc = subprocess.run(
        [sys.executable, "-m", "diabetes_risk", "token", "--client", "stranger"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1 and "unknown client 'stranger'" in proc.stderr and not proc.stdout


def test_undeclared_methods_are_405_with_allow_and_unknown_routes_404(api_url):
    response = requests.put(f"{api_url}/predict", json=EXAMPLE_PATIENT, timeout=30)
    assert response.status_code == 405 and response.headers["Allow"] == "POST"
    assert response.json()["error"] == "method PUT not allowed on /predict"
    # TRACE is not a method API Gateway routes at all: a 404 in the API's format, not a bare 403
    odd = requests.delete(f"{api_url}/model", data="x", headers={"Content-Type": "text/plain"}, timeout=30)
    assert odd.status_code == 405 and odd.headers["Allow"] == "GET"  # any content type: still 405, never 500
    response = requests.request("TRACE", f"{api_url}/predict", timeout=30)
    assert response.status_code == 404 and response.json()["error"].startswith("no route TRACE")
    assert requests.get(f"{api_url}/nothing-here", timeout=30).status_code == 404


def test_over_the_stages_limit_is_429_in_the_api_error_format(api_url, aws, deployed):
    """The stage's throttling as deployed (50/s, burst 100) lowered for a moment, as an operator could."""
    api, stage = deployed["ApiId"], "prod"
    limits = aws.apigateway.get_stage(restApiId=api, stageName=stage)["methodSettings"]["*/*"]
    assert (limits["throttlingRateLimit"], limits["throttlingBurstLimit"]) == (50.0, 100)  # from the template

    def set_limits(rate, burst):
        aws.apigateway.update_stage(
            restApiId=api,
            stageName=stage,
            patchOperations=[
                {"op": "replace", "path": "/*/*/throttling/rateLimit", "value": str(rate)},
                {"op": "replace", "path": "/*/*/throttling/burstLimit", "value": str(burst)},
            ],
        )

    set_limits(0.5, 2)
    try:
        answers = [requests.get(f"{api_url}/health", timeout=30) for _ in range(5)]
    finally:
        set_limits(limits["throttlingRateLimit"], limits["throttlingBurstLimit"])
    throttled = [r for r in answers if r.status_code == 429]
    assert [r.status_code for r in answers[:2]] == [200, 200] and len(throttled) >= 2
    assert throttled[0].json()["error"] == "too many requests" and throttled[0].headers["Retry-After"] == "1"
    time.sleep(1)  # the bucket refills at the restored rate
    assert requests.get(f"{api_url}/health", timeout=30).status_code == 200  # limits back


def test_objects_the_functions_write_are_encrypted_with_the_projects_keys(aws, deployed, champion_run):
    pointer = aws.s3.head_object(Bucket=deployed["ArtifactsBucket"], Key="serving/champion.json")
    assert pointer["ServerSideEncryption"] == "aws:kms"
    assert pointer["SSEKMSKeyId"] == deployed["ArtifactsKeyArn"]
    model_key = json.loads(
        aws.s3.get_object(Bucket=deployed["ArtifactsBucket"], Key="serving/champion.json")["Body"].read()
    )["onnx_key"]
    model = aws.s3.head_object(Bucket=deployed["ArtifactsBucket"], Key=model_key)
    assert model["SSEKMSKeyId"] == deployed["ArtifactsKeyArn"]
    uploaded = aws.s3.put_object(Bucket=deployed["DataBucket"], Key="data/probe.txt", Body=b"x")
    assert uploaded["SSEKMSKeyId"] == deployed["DataKeyArn"]  # the bucket's default: the data key


def _role_policies(aws, deployed, function_name: str) -> list[IAMPolicy]:
    role = aws.lambda_.get_function_configuration(FunctionName=function_name)["Role"].rsplit("/", 1)[-1]
    out = []
    for name in aws.iam.list_role_policies(RoleName=role)["PolicyNames"]:
        document = aws.iam.get_role_policy(RoleName=role, PolicyName=name)["PolicyDocument"]
        out.append(IAMPolicy(json.dumps(document) if not isinstance(document, str) else document))
    return out


def _allowed(policies: list[IAMPolicy], action: str, resource: str) -> bool:
    results = [p.is_action_permitted(action, resource) for p in policies]
    return PermissionResult.PERMITTED in results and PermissionResult.DENIED not in results


def test_a_function_without_the_grant_cannot_read_another_functions_bucket_or_key(aws, deployed):
    """LocalStack community does not enforce IAM, so the roles as deployed into the local cloud are read back and
    evaluated with moto's IAM policy evaluator: what each function may do is what its policies say."""
    functions = {f["FunctionName"]: f for f in aws.lambda_.list_functions()["Functions"]}
    predict = next(n for n, f in functions.items() if f["Handler"] == "predict.app.handler")
    batch = deployed["BatchFunctionName"]
    predict_policies, batch_policies = _role_policies(aws, deployed, predict), _role_policies(aws, deployed, batch)
    data_object = f"arn:aws:s3:::{deployed['DataBucket']}/data/incoming/clinic.csv"
    inbox_object = f"arn:aws:s3:::{deployed['BatchBucket']}/inbox/clinic.csv"
    model_object = f"arn:aws:s3:::{deployed['ArtifactsBucket']}/models/v1/model.onnx"
    # what they need
    assert _allowed(predict_policies, "s3:GetObject", model_object)
    assert _allowed(predict_policies, "kms:Decrypt", deployed["ArtifactsKeyArn"])
    assert _allowed(batch_policies, "s3:GetObject", inbox_object)
    assert _allowed(batch_policies, "kms:Decrypt", deployed["BatchKeyArn"])
    # and not what the others hold
    assert not _allowed(predict_policies, "s3:GetObject", inbox_object)
    assert not _allowed(predict_policies, "kms:Decrypt", deployed["BatchKeyArn"])
    assert not _allowed(predict_policies, "kms:Decrypt", deployed["DataKeyArn"])
    assert not _allowed(batch_policies, "s3:GetObject", data_object)
    # batch writes the feature store's measurements into the data bucket (so it holds the data key), but may read
    # no object there except its own markers: the datasets stay out of its reach
    assert _allowed(batch_policies, "s3:PutObject", f"arn:aws:s3:::{deployed['DataBucket']}/features/measurements/x")
    assert not _allowed(
        batch_policies, "s3:GetObject", f"arn:aws:s3:::{deployed['DataBucket']}/features/measurements/x"
    )
    assert not _allowed(predict_policies, "kms:Decrypt", deployed["DataKeyArn"])
    assert _allowed(predict_policies, "kms:Decrypt", deployed["FeaturesKeyArn"])  # the online store's own key
    assert not _allowed(batch_policies, "s3:ListBucketVersions", f"arn:aws:s3:::{deployed['BatchBucket']}")


def test_schemathesis_finds_no_conformance_defect_in_the_deployed_api(api_url, api_headers, tmp_path, unthrottled):
    """OpenAPI-driven checks (all of them) against the API as deployed, with a token: status codes, content
    types, schemas, unsupported methods (405 + Allow), negative data rejected, no server error."""
    proc = subprocess.run(
        [
            str(Path(sys.executable).with_name("st")),
            "--no-color",
            "--config-file",
            str(HERE / "schemathesis.toml"),
            "run",
            f"{api_url}/openapi.json",
            "--url",
            api_url,
            "--header",
            f"Authorization: {api_headers['Authorization']}",
            "--checks",
            "all",
            "--phases",
            "examples,coverage,fuzzing",
            "--max-examples",
            "15",
            "--workers",
            "2",
            "--seed",
            "20261130",
        ],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=tmp_path,  # its cache folder (.schemathesis/) goes there
    )
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]
