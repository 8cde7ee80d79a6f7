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
    monkeypatch.setenv("DR_ALLOW_FAULT_INJECTION", "true")  # as the local target deploys it
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


def test_fault_injection_is_refused_where_the_stack_does_not_allow_it(handlers, monkeypatch):
    monkeypatch.setenv("DR_ALLOW_FAULT_INJECTION", "false")  # the AWS default
    module = importlib.reload(handlers)
    event = load_event("training_step")
    event["config"]["fault"] = {"step": "validate", "mode": "always"}
    with pytest.raises(ValueError, match="fault injection is off"):
        module.validate(event, CONTEXT)
    del event["config"]["fault"]
    assert module.validate(event, CONTEXT)["features"]  # without the hook the step runs


@pytest.mark.parametrize("uri", ["/home/me/pima.csv", "file:///tmp/x.csv", "https://example.org/x.csv", "../x.csv"])
def test_a_run_in_lambda_reads_only_s3_or_the_bundled_data(handlers, uri):
    event = load_event("training_step")
    event["config"]["train_uri"] = uri
    with pytest.raises(ValidationError, match="s3://bucket/key"):
        handlers.validate(event, CONTEXT)


def test_the_version_that_started_the_run_is_the_one_read(handlers, s3):
    from training.data import load_bundled

    s3.create_bucket(Bucket="data")
    s3.put_bucket_versioning(Bucket="data", VersioningConfiguration={"Status": "Enabled"})
    frame = load_bundled("train").frame
    first = s3.put_object(Bucket="data", Key="data/incoming/p.csv", Body=frame.to_csv(index=False).encode())
    s3.put_object(Bucket="data", Key="data/incoming/p.csv", Body=frame.head(50).to_csv(index=False).encode())
    event = load_event("training_step")
    event["config"] |= {"train_uri": "s3://data/data/incoming/p.csv", "train_version_id": first["VersionId"]}
    result = handlers.validate(event, CONTEXT)
    assert result["validation"]["train"].startswith("300/300 rows valid")  # not the 50-row overwrite
    assert result["train"]["version_id"] == first["VersionId"]


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


@pytest.mark.parametrize(("search_jobs", "expected"), [("0", "cores"), ("1", 1), ("3", 3)])
def test_train_searches_on_the_settings_workers(handlers, monkeypatch, search_jobs, expected):
    """DR_SEARCH_JOBS reaches the family's search: 0 (the local target's) is every core joblib finds, at most 4."""
    import joblib

    monkeypatch.setenv("DR_SEARCH_JOBS", search_jobs)
    module = importlib.reload(handlers)
    seen = {}
    monkeypatch.setattr(
        module.steps,
        "train_step",
        lambda settings, store, family, n_jobs=1: seen.update(n=n_jobs) or {"family": family},
    )
    module.train(load_event("training_step", family="random_forest"), CONTEXT)
    assert seen["n"] == (min(joblib.cpu_count(), 4) if expected == "cores" else expected)


@pytest.mark.parametrize(("cores", "workers"), [(1, 1), (2, 2), (16, 4)])
def test_search_jobs_zero_is_the_cores_up_to_four(monkeypatch, cores, workers):
    """Each worker is a process counted in the Train function's memory, and three families train at once."""
    import joblib

    from training.settings import TrainingSettings

    monkeypatch.setattr(joblib, "cpu_count", lambda: cores)
    assert TrainingSettings(search_jobs=0).search_workers == workers
    assert TrainingSettings(search_jobs=6).search_workers == 6  # an explicit count is kept


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
        "train_version_id": "3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY",  # the run reads the version that started it
        "holdout_uri": "bundled",
    }
    again = module.handler(load_event("s3_put_incoming"), CONTEXT)  # S3 delivers at least once
    assert again["started"] == [] and len(sfn.list_executions(stateMachineArn=arn)["executions"]) == 1
    # the same bytes uploaded again: same ETag, a new version, a new run
    reupload = load_event("s3_put_incoming")
    reupload["Records"][0]["s3"]["object"]["versionId"] = "a-newer-version"
    assert len(module.handler(reupload, CONTEXT)["started"]) == 1
    assert len(sfn.list_executions(stateMachineArn=arn)["executions"]) == 2


@pytest.mark.parametrize(
    "key",
    ["data/incoming/clínica-ñ.csv", "data/incoming/患者データ.csv", "data/incoming/" + "très-long-" * 60 + ".csv"],
)
def test_execution_names_are_ascii_and_bounded_whatever_the_file_is_called(start, key):
    import re
    import urllib.parse

    module, _sfn, _arn = start
    version = load_event("s3_put_incoming")["Records"][0]["s3"]["object"]["versionId"]
    name = module.execution_name(key, version)
    assert re.fullmatch(r"[A-Za-z0-9_-]{1,80}", name), name
    assert name != module.execution_name(key, "another-version")  # still one per version
    event = load_event("s3_put_incoming")
    event["Records"][0]["s3"]["object"]["key"] = urllib.parse.quote_plus(key)
    assert module.handler(event, CONTEXT)["started"] == [name]


def test_start_settings_fail_at_cold_start_without_state_machine(s3, monkeypatch):
    monkeypatch.delenv("DR_STATE_MACHINE_ARN", raising=False)
    import training_steps.start as module

    with pytest.raises(ValidationError, match="state_machine_arn"):
        importlib.reload(module)


def test_materialize_after_a_batch_starts_at_the_earliest_marker_day_and_refuses_other_keys(handlers, monkeypatch):
    from tests.events.loader import s3_event

    calls = []
    monkeypatch.setattr(
        handlers.steps, "materialize_step", lambda settings, cloud, start=None: calls.append(start) or {}
    )
    event = s3_event("data", "features/ingested/2024-03-05/clinic%3Da.json", None)
    event["Records"].append(s3_event("data", "features/ingested/2024-02-28/other.json", None)["Records"][0])
    handlers.materialize(event, CONTEXT)
    assert [c.isoformat() for c in calls] == ["2024-02-28T00:00:00+00:00"]
    with pytest.raises(ValueError, match="not an ingestion marker"):
        handlers.materialize(s3_event("data", "features/measurements/date=2024-03-05/x.parquet", None), CONTEXT)
    assert len(calls) == 1


def test_materialize_from_the_state_machine_runs_the_step(handlers, monkeypatch):
    calls = []
    monkeypatch.setattr(
        handlers.steps, "materialize_step", lambda settings, cloud, start=None: calls.append(start) or {"ok": 1}
    )
    assert handlers.materialize(load_event("training_step"), CONTEXT) == {"ok": 1} and calls == [None]
