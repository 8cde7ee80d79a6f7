"""Training step handlers in process: parsing, fault hook, transient-error mapping, failure record,
and the new-data trigger. AWS is moto; events come from tests/events/."""

from __future__ import annotations

import importlib
import json

import pytest
from botocore.exceptions import ClientError
from pydantic import ValidationError

from tests.events.loader import FakeContext, load_event

BUCKET = "artifacts-test"


CONTEXT = FakeContext("training-step", "req-1")


@pytest.fixture
def handlers(s3, monkeypatch, tmp_path):
    monkeypatch.setenv("DR_ARTIFACTS_BUCKET", BUCKET)
    monkeypatch.setenv("DR_WORK_DIR", str(tmp_path))
    s3.create_bucket(Bucket=BUCKET)
    import training_steps.handlers as module

    return importlib.reload(module)  # cold start inside moto, with this test's settings


def test_validate_step_writes_the_run_and_returns_small_json(handlers, s3):
    result = handlers.validate(load_event("training_step"), CONTEXT)
    assert result["validation"]["train"].startswith("300/300 rows valid")
    assert len(json.dumps(result)) < 4000  # small JSON between states, never the data
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET)["Contents"]}
    assert "runs/train-20261129T120000-abc123/data/validated_train.parquet" in keys


def test_fault_once_fails_first_then_succeeds(handlers):
    event = load_event("training_step")
    event["config"]["fault"] = {"step": "validate", "mode": "once"}
    with pytest.raises(handlers.TransientError, match="injected once fault"):
        handlers.validate(event, CONTEXT)
    assert handlers.validate(event, CONTEXT)["features"]


def test_fault_always_keeps_failing(handlers):
    event = load_event("training_step")
    event["config"]["fault"] = {"step": "validate", "mode": "always"}
    for _ in range(2):
        with pytest.raises(handlers.TransientError):
            handlers.validate(event, CONTEXT)


def test_throttling_becomes_transient_but_access_denied_does_not(handlers, monkeypatch):
    def fail_with(code, status):
        def step(*args, **kwargs):
            raise ClientError(
                {"Error": {"Code": code, "Message": code}, "ResponseMetadata": {"HTTPStatusCode": status}}, "GetObject"
            )

        return step

    monkeypatch.setattr(handlers.steps, "validate_step", fail_with("SlowDown", 503))
    with pytest.raises(handlers.TransientError, match="SlowDown"):
        handlers.validate(load_event("training_step"), CONTEXT)
    monkeypatch.setattr(handlers.steps, "validate_step", fail_with("AccessDenied", 403))
    with pytest.raises(ClientError, match="AccessDenied"):
        handlers.validate(load_event("training_step"), CONTEXT)


def test_bad_run_id_is_refused(handlers):
    with pytest.raises(ValidationError, match="run_id"):
        handlers.validate(load_event("training_step", run_id="../../etc"), CONTEXT)


def test_unknown_family_is_named(handlers):
    with pytest.raises(ValueError, match="unknown model family 'svm'"):
        handlers.train(load_event("training_step", family="svm"), CONTEXT)


def test_bad_data_uri_is_a_clear_data_error(handlers):
    from training.data import DataError

    event = load_event("training_step")
    event["config"]["train_uri"] = f"s3://{BUCKET}/data/missing.csv"
    with pytest.raises(DataError, match="no such object"):
        handlers.validate(event, CONTEXT)


def test_record_failure_keeps_step_and_message(handlers, s3):
    record = handlers.record_failure(load_event("training_failure"), CONTEXT)
    assert record["failed_step"] == "Evaluate"
    assert record["message"] == "TransientError: injected always fault in step 'evaluate'"
    stored = json.loads(
        s3.get_object(Bucket=BUCKET, Key="runs/train-20261129T120000-abc123/failure.json")["Body"].read()
    )
    assert stored == record


def emf_records(out: str) -> list[dict]:
    return [json.loads(line) for line in out.splitlines() if '"_aws"' in line]


def test_steps_report_their_outcome_and_duration(handlers, capfd):
    handlers.validate(load_event("training_step"), CONTEXT)
    event = load_event("training_step")
    event["config"]["fault"] = {"step": "validate", "mode": "always"}
    with pytest.raises(handlers.TransientError):
        handlers.validate(event, CONTEXT)
    records = emf_records(capfd.readouterr().out)
    outcomes = [(r["step"], r["outcome"]) for r in records if "Steps" in r]
    assert outcomes == [("validate", "succeeded"), ("validate", "failed")]
    durations = [r["StepSeconds"] for r in records if "StepSeconds" in r]
    assert len(durations) == 2 and all(d[0] > 0 for d in durations)


def test_a_failed_run_is_counted_even_when_its_record_cannot_be_written(handlers, s3, capfd):
    s3.delete_bucket(Bucket=BUCKET)  # the failure record's S3 write will fail
    with pytest.raises(ClientError):
        handlers.record_failure(load_event("training_failure"), CONTEXT)
    runs = [r for r in emf_records(capfd.readouterr().out) if "TrainingRuns" in r]
    assert [(r["outcome"], r["TrainingRuns"], r["service"]) for r in runs] == [("failed", [1.0], "training")]


@pytest.fixture
def start(s3, monkeypatch):
    import boto3

    sfn = boto3.client("stepfunctions", region_name="us-east-1")
    arn = sfn.create_state_machine(
        name="training",
        definition=json.dumps({"StartAt": "A", "States": {"A": {"Type": "Pass", "End": True}}}),
        roleArn="arn:aws:iam::123456789012:role/sfn",
    )["stateMachineArn"]
    monkeypatch.setenv("DR_STATE_MACHINE_ARN", arn)
    import training_steps.start as module

    return importlib.reload(module), sfn, arn


def test_new_data_starts_one_execution_per_object_version(start):
    module, sfn, arn = start
    event = load_event("s3_put_incoming")
    first = module.handler(event, CONTEXT)
    assert len(first["started"]) == 1 and first["skipped"] == ["data/archive/old.csv"]
    execution = sfn.list_executions(stateMachineArn=arn)["executions"][0]
    described = json.loads(sfn.describe_execution(executionArn=execution["executionArn"])["input"])
    # the key arrives URL-encoded: it must be decoded before use
    assert described == {
        "train_uri": "s3://diabetes-risk-data-000000000000-us-east-1/data/incoming/clinic north/day 1.csv",
        "holdout_uri": "bundled",
    }
    again = module.handler(load_event("s3_put_incoming"), CONTEXT)  # S3 delivers at least once
    assert again["started"] == [] and len(sfn.list_executions(stateMachineArn=arn)["executions"]) == 1


def test_start_settings_fail_at_cold_start_without_state_machine(s3, monkeypatch):
    monkeypatch.delenv("DR_STATE_MACHINE_ARN", raising=False)
    import training_steps.start as module

    with pytest.raises(ValidationError, match="state_machine_arn"):
        importlib.reload(module)
