"""The training state machine deployed with cdklocal, run through `diabetes-risk train` and boto3:
success to a champion, a fault retried, a fault that ends in the failure path with the champion kept."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import subprocess
import sys
import time

import pytest

from tests.integration.conftest import cli_env

pytestmark = pytest.mark.integration


def train(cloud, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "diabetes_risk", "train", "--json", *args],
        env=cli_env(cloud),
        capture_output=True,
        text=True,
        timeout=900,
    )


def champion(cloud) -> str | None:
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    try:
        return str(MlflowClient(cloud.mlflow_url).get_model_version_by_alias("diabetes-risk", "champion").version)
    except MlflowException:
        return None


def history(aws, arn: str) -> list[dict]:
    return aws.stepfunctions.get_execution_history(executionArn=arn, maxResults=1000)["events"]


@pytest.fixture(scope="module")
def first_run(champion_run):
    return champion_run


def test_training_execution_succeeds_and_publishes_the_champion(first_run, deployed, local_cloud, aws):
    assert first_run["status"] == "SUCCEEDED"
    assert first_run["evaluate"]["holdout"]["roc_auc"] >= 0.80
    version = first_run["register"]["model_version"]
    assert first_run["promote"]["promoted"] is True
    from mlflow import MlflowClient

    # (other tests may promote later versions into the shared registry; this one was promoted when it ran)
    registered = MlflowClient(local_cloud.mlflow_url).get_model_version("diabetes-risk", version)
    assert registered.tags["gate_decision"] == "promoted" and registered.tags["onnx_sha256"]
    bucket = deployed["ArtifactsBucket"]
    pointer = json.loads(aws.s3.get_object(Bucket=bucket, Key="serving/champion.json")["Body"].read())
    assert pointer["model_version"] == version
    onnx_bytes = aws.s3.get_object(Bucket=bucket, Key=pointer["onnx_key"])["Body"].read()
    assert hashlib.sha256(onnx_bytes).hexdigest() == pointer["onnx_sha256"]
    assert {"Validate", "Features", "Train families", "Evaluate", "Export", "Register", "Promote"} <= set(
        first_run["state_seconds"]
    )


def test_a_step_failing_once_is_retried_and_the_run_succeeds(first_run, deployed, aws):
    execution = aws.stepfunctions.start_execution(
        stateMachineArn=deployed["TrainingStateMachineArn"],
        input=json.dumps({"families": ["logistic_regression"], "fault": {"step": "features", "mode": "once"}}),
    )["executionArn"]
    deadline = time.monotonic() + 600
    while (desc := aws.stepfunctions.describe_execution(executionArn=execution))["status"] == "RUNNING":
        assert time.monotonic() < deadline
        time.sleep(1)
    assert desc["status"] == "SUCCEEDED", desc.get("cause")
    failed = [e for e in history(aws, execution) if e["type"] == "LambdaFunctionFailed"]
    assert len(failed) == 1 and "injected once fault" in failed[0]["lambdaFunctionFailedEventDetails"]["cause"]


def test_a_step_that_always_fails_ends_in_the_failure_path_and_keeps_the_champion(
    first_run, deployed, local_cloud, aws
):
    before = champion(local_cloud)
    pointer_before = aws.s3.get_object(Bucket=deployed["ArtifactsBucket"], Key="serving/champion.json")["Body"].read()
    proc = train(local_cloud, "--families", "logistic_regression", "--inject-fault", "evaluate:always")
    assert proc.returncode == 1
    assert "training failed in state 'Evaluate'" in proc.stderr
    assert "injected always fault" in proc.stderr
    result = json.loads(proc.stdout)
    assert result["status"] == "FAILED" and result["failed_step"] == "Evaluate"
    record = json.loads(
        aws.s3.get_object(Bucket=deployed["ArtifactsBucket"], Key=f"runs/{result['execution']}/failure.json")[
            "Body"
        ].read()
    )
    assert record["failed_step"] == "Evaluate" and record["error"] == "TransientError"
    arn = deployed["TrainingStateMachineArn"].replace(":stateMachine:", ":execution:") + f":{result['execution']}"
    failed = [e for e in history(aws, arn) if e["type"] == "LambdaFunctionFailed"]
    assert len(failed) == 3  # the first attempt and two retries with backoff
    assert champion(local_cloud) == before
    assert aws.s3.get_object(Bucket=deployed["ArtifactsBucket"], Key="serving/champion.json")["Body"].read() == (
        pointer_before
    )


def test_new_data_under_incoming_starts_a_training_run(deployed, aws, pima_csv):
    key = f"data/incoming/clinic-{int(time.time())}.csv"
    aws.s3.put_object(Bucket=deployed["DataBucket"], Key=key, Body=pima_csv)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        runs = aws.stepfunctions.list_executions(stateMachineArn=deployed["TrainingStateMachineArn"])["executions"]
        mine = [r for r in runs if r["name"].startswith("data-clinic-")]
        if mine:
            break
        time.sleep(1)
    else:
        pytest.fail("no execution started for the new data")
    described = aws.stepfunctions.describe_execution(executionArn=mine[0]["executionArn"])
    assert json.loads(described["input"])["train_uri"] == f"s3://{deployed['DataBucket']}/{key}"
    aws.stepfunctions.stop_execution(executionArn=mine[0]["executionArn"])  # seen to start: enough here


@pytest.fixture
def pima_csv() -> bytes:
    from training.data import load_bundled

    frame = load_bundled("train").frame
    buf = io.StringIO()
    frame.to_csv(buf, index=False, quoting=csv.QUOTE_MINIMAL)
    return buf.getvalue().encode()


def test_runs_lists_recent_executions_with_the_failed_step(first_run, local_cloud):
    proc = subprocess.run(
        [sys.executable, "-m", "diabetes_risk", "runs"],
        env=cli_env(local_cloud),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert first_run["execution"] in proc.stdout and "SUCCEEDED" in proc.stdout
