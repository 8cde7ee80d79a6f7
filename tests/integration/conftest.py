"""One embedded local cloud for the whole integration session, on free loopback ports."""

from __future__ import annotations

import os

import pytest
from dr_host_executor.process import free_port

from localcloud import runtime
from localcloud.settings import LocalCloudSettings
from localcloud.smoke import clients


@pytest.fixture(scope="session")
def local_cloud() -> LocalCloudSettings:
    settings = LocalCloudSettings(
        instance="pytest",
        localstack_port=int(os.environ.get("DR_TEST_LOCALSTACK_PORT") or free_port()),
        mlflow_port=int(os.environ.get("DR_TEST_MLFLOW_PORT") or free_port()),
        prometheus_port=free_port(),
        alertmanager_port=free_port(),
        alerts_port=free_port(),
        console_port=free_port(),
        lambda_retry_base_delay_s=5,  # asynchronous retries after 5 s and 10 s (about 1 and 2 minutes on AWS)
        lambda_max_environments=2,  # the default on 2 cores, fixed so the bound's test holds on any machine
    )
    runtime.up(settings, progress=print)
    yield settings
    runtime.down(settings)


@pytest.fixture(scope="session")
def aws(local_cloud):
    """boto3 clients bound to the local cloud: aws.s3, aws.lambda_, ..."""

    class Clients:
        pass

    c = Clients()
    for name in ("s3", "lambda", "stepfunctions", "apigateway", "cloudwatch", "logs", "iam"):
        setattr(c, name.replace("lambda", "lambda_"), clients(local_cloud, name)[0])
    return c


@pytest.fixture(scope="session")
def deployed(local_cloud):
    """The CDK app deployed into the session's local cloud with cdklocal (bootstrap included)."""
    from diabetes_risk.deploy import deploy_local

    result = deploy_local(local_cloud, on_line=lambda line: None)
    print(f"deploy timings: {result['timings']}")
    return result["outputs"]


@pytest.fixture(scope="session")
def api_headers(local_cloud, deployed) -> dict[str, str]:
    """What a registered client sends: a bearer token from the local issuer, both scopes."""
    from diabetes_risk.access import local_token

    return {"Authorization": f"Bearer {local_token(local_cloud, 'clinic-demo', ['predict', 'model:read'])}"}


def wait_until(predicate, timeout: float, what: str, poll: float = 0.5):
    """Poll until `predicate()` is truthy (and return it), or fail naming what never happened and the last value."""
    import time

    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(poll)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what} (last: {last!r})")


def cli_env(cloud) -> dict[str, str]:
    return {
        **os.environ,
        "DR_INSTANCE": cloud.instance,
        "DR_LOCALSTACK_PORT": str(cloud.localstack_port),
        "DR_MLFLOW_PORT": str(cloud.mlflow_port),
        "DR_PROMETHEUS_PORT": str(cloud.prometheus_port),
        "DR_ALERTMANAGER_PORT": str(cloud.alertmanager_port),
        "DR_ALERTS_PORT": str(cloud.alerts_port),
        "DR_CONSOLE_PORT": str(cloud.console_port),
        "COLUMNS": "200",
    }


@pytest.fixture(scope="session")
def champion_run(local_cloud, deployed) -> dict:
    """One training execution through the deployed state machine (`diabetes-risk train --json`)."""
    import json
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-m", "diabetes_risk", "train", "--json"],
        env=cli_env(local_cloud),
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)


def pytest_collection_modifyitems(config, items):
    """The console's browser tests train from the page, and their models may become champion: they run last, so
    the training tests' assertions about the champion their own run published hold."""
    items.sort(key=lambda item: item.module.__name__.endswith("test_console_browser"))


@pytest.fixture
def unthrottled(aws, deployed):
    """The stage's 50 requests/s lifted for a test, then restored, where the test's own load outruns it on the local
    API (schemathesis' workers, the canary's 500 requests): a 429 is not what those tests look at
    (test_api_auth's test_over_the_stages_limit_is_429_in_the_api_error_format is)."""

    def limits(rate: str, burst: str) -> list[dict]:
        return [
            {"op": "replace", "path": "/*/*/throttling/rateLimit", "value": rate},
            {"op": "replace", "path": "/*/*/throttling/burstLimit", "value": burst},
        ]

    before = aws.apigateway.get_stage(restApiId=deployed["ApiId"], stageName="prod")["methodSettings"]["*/*"]
    aws.apigateway.update_stage(restApiId=deployed["ApiId"], stageName="prod", patchOperations=limits("10000", "10000"))
    yield
    aws.apigateway.update_stage(
        restApiId=deployed["ApiId"],
        stageName="prod",
        patchOperations=limits(str(before["throttlingRateLimit"]), str(before["throttlingBurstLimit"])),
    )
