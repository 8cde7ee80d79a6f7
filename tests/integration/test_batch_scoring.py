"""Batch scoring on the local cloud: files dropped into the deployed batch bucket's inbox/ are scored by the
batch-score function (S3 notification → host executor) into outbox/<name>/; duplicates, bad rows, files that
are not tables, empty files, Kaggle zeros and Parquet."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import time

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from batch_scoring.service import result_name
from diabetes_risk.batch_client import Upload, wait_for_result
from inference_core.contracts import EXAMPLE_PATIENT
from tests.events.loader import s3_event
from tests.integration.conftest import cli_env

pytestmark = pytest.mark.integration
FEATURES = list(EXAMPLE_PATIENT)


@pytest.fixture(scope="module")
def batch(aws, deployed, champion_run) -> str:
    return deployed["BatchBucket"]


def drop(
    aws, bucket: str, key: str, body: bytes, timeout: float = 120, deliver: str | None = None
) -> tuple[Upload, str, dict]:
    """Put a file into the inbox and wait for its result. `deliver`: also hand the S3 event to that function
    synchronously (a second delivery of the same object version, as S3 may make)."""
    put = aws.s3.put_object(Bucket=bucket, Key=key, Body=body)
    upload = Upload(bucket, key, put.get("VersionId"), result_name(key, put.get("VersionId"), put["ETag"]))
    if deliver:
        aws.lambda_.invoke(FunctionName=deliver, Payload=json.dumps(s3_event(bucket, key, upload.version_id)).encode())
    kind, record = wait_for_result(aws.s3, upload, timeout, poll_s=0.5)
    return upload, kind, record


def listing(aws, bucket: str, prefix: str) -> list[str]:
    return sorted(o["Key"] for o in aws.s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", []))


def csv_of(rows: list[dict], columns: list[str]) -> bytes:
    return pd.DataFrame(rows, columns=columns).to_csv(index=False).encode()


def test_cli_score_wait_prints_the_manifest_of_a_file_with_bad_rows(local_cloud, batch, aws, deployed, tmp_path):
    rows = [{"patient_id": f"P{i}", **EXAMPLE_PATIENT, "glucose": 90 + i} for i in range(200)]
    rows[4]["glucose"] = "high"
    rows[9]["age"] = 300
    path = tmp_path / "clinic-day.csv"
    path.write_bytes(csv_of(rows, ["patient_id", *FEATURES]))
    proc = subprocess.run(
        [sys.executable, "-m", "diabetes_risk", "score", str(path), "--wait", "--json"],
        env=cli_env(local_cloud),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    manifest = json.loads(proc.stdout[proc.stdout.index("{") :])
    pointer = json.loads(
        aws.s3.get_object(Bucket=deployed["ArtifactsBucket"], Key="serving/champion.json")["Body"].read()
    )
    assert manifest["model"]["version"] == pointer["model_version"]
    assert (manifest["rows_read"], manifest["rows_scored"], manifest["rows_rejected"]) == (200, 198, 2)
    assert manifest["input"]["key"] == "inbox/clinic-day.csv" and manifest["input"]["version_id"]
    prefix = f"outbox/{manifest['name']}/"
    assert listing(aws, batch, prefix) == [
        prefix + f for f in ("errors.csv", "manifest.json", "predictions.csv", "predictions.parquet")
    ]
    errors = aws.s3.get_object(Bucket=batch, Key=prefix + "errors.csv")["Body"].read().decode().splitlines()
    assert errors == [
        '"row","field","message"',
        '5,"glucose","not a number: \'high\'"',
        '10,"age","300 is outside the range 18 to 120"',
    ]
    table = pq.read_table(
        io.BytesIO(aws.s3.get_object(Bucket=batch, Key=prefix + "predictions.parquet")["Body"].read())
    )
    assert table.num_rows == 198 and table.column("patient_id")[4].as_py() == "P5"
    assert set(table.column("risk_band").to_pylist()) <= {"low", "moderate", "high"}
    assert manifest["drift"]["status"] in ("ok", "drift")  # 198 rows: enough to judge


def test_duplicate_delivery_gives_one_result_and_a_new_version_a_new_one(batch, aws, deployed):
    body = csv_of([EXAMPLE_PATIENT] * 3, FEATURES)
    upload, kind, manifest = drop(aws, batch, "inbox/dup.csv", body)
    assert kind == "manifest"
    stamp = aws.s3.head_object(Bucket=batch, Key=upload.prefix + "manifest.json")["LastModified"]
    event = {
        "Records": [
            {
                "eventSource": "aws:s3",
                "eventName": "ObjectCreated:Put",
                "s3": {
                    "bucket": {"name": batch},
                    "object": {
                        "key": "inbox/dup.csv",
                        "versionId": upload.version_id,
                        "eTag": manifest["input"]["etag"],
                    },
                },
            }
        ]
    }
    again = aws.lambda_.invoke(FunctionName=deployed["BatchFunctionName"], Payload=json.dumps(event).encode())
    result = json.loads(again["Payload"].read())
    assert result["results"][0]["status"] == "duplicate", result
    assert aws.s3.head_object(Bucket=batch, Key=upload.prefix + "manifest.json")["LastModified"] == stamp
    newer, kind, _ = drop(aws, batch, "inbox/dup.csv", body)
    assert kind == "manifest" and newer.name != upload.name
    folders = {k.split("/")[1] for k in listing(aws, batch, "outbox/dup-")}
    assert folders == {upload.name, newer.name}


@pytest.mark.parametrize(
    "key, body, reason",
    [
        ("inbox/scan.csv", b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\x00<<>>", "binary content"),
        ("inbox/empty.csv", b"", "the file is empty"),
        ("inbox/letter.csv", b"Dear colleague,\nplease find attached\n", "required columns missing"),
    ],
)
def test_files_that_are_not_tables_move_to_quarantine(batch, aws, key, body, reason):
    upload, kind, failed = drop(aws, batch, key, body)
    assert kind == "failed" and failed["kind"] == "unreadable" and reason in failed["reason"]
    assert failed["quarantined_to"] == f"quarantine/{upload.name}/{key.rsplit('/', 1)[-1]}"
    assert aws.s3.get_object(Bucket=batch, Key=failed["quarantined_to"])["Body"].read() == body
    assert key not in listing(aws, batch, "inbox/")
    assert listing(aws, batch, upload.prefix) == [upload.prefix + "failed.json"]  # no manifest


def test_kaggle_zeros_mean_missing(batch, aws):
    body = (
        b"Pregnancies,Glucose,BloodPressure,SkinThickness,Insulin,BMI,DiabetesPedigreeFunction,Age,Outcome\n"
        b"6,148,72,35,0,33.6,0.627,50,1\n1,85,66,0,0,26.6,0.351,31,0\n8,0,64,0,0,23.3,0.672,32,1\n"
    )
    _, kind, manifest = drop(aws, batch, "inbox/kaggle.csv", body)
    assert kind == "manifest" and manifest["source_format"] == "kaggle"
    assert (manifest["rows_scored"], manifest["rows_rejected"]) == (2, 1)
    assert manifest["errors_by_field"] == {"glucose": 1} and manifest["imputed_by_feature"]["skin_thickness"] == 1


def test_parquet_is_scored_without_a_csv_copy(batch, aws):
    table = pa.Table.from_pylist([{**EXAMPLE_PATIENT, "age": 20 + i % 90} for i in range(500)])
    sink = io.BytesIO()
    pq.write_table(table, sink, row_group_size=128)
    _upload, kind, manifest = drop(aws, batch, "inbox/registry.parquet", sink.getvalue())
    assert kind == "manifest" and manifest["kind"] == "parquet" and manifest["rows_scored"] == 500
    assert "predictions.csv" not in manifest["output_keys"]
    assert "download" in manifest["timings_s"]


def test_a_drifting_batch_starts_training_when_the_setting_is_on(batch, aws, deployed, pima_train_csv):
    """Off by default (the deployed setting); switched on, a shifted population starts the state machine."""
    fn = deployed["BatchFunctionName"]
    config = aws.lambda_.get_function_configuration(FunctionName=fn)
    env = config["Environment"]["Variables"]
    assert env["DR_DRIFT_STARTS_TRAINING"] == "false"
    _, kind, manifest = drop(aws, batch, "inbox/shifted-off.csv", pima_train_csv)
    assert kind == "manifest" and manifest["drift"]["status"] == "drift"
    assert "glucose" in manifest["drift"]["drifted_features"] and manifest["training_execution_arn"] is None

    reconfigure(aws, fn, {**env, "DR_DRIFT_STARTS_TRAINING": "true"})
    try:
        _, kind, manifest = drop(aws, batch, "inbox/shifted-on.csv", pima_train_csv, deliver=fn)
        assert kind == "manifest" and manifest["training_execution_arn"]
        execution = aws.stepfunctions.describe_execution(executionArn=manifest["training_execution_arn"])
        assert execution["stateMachineArn"] == deployed["TrainingStateMachineArn"]
        assert json.loads(execution["input"])["reason"].startswith("drift in batch shifted-on-")
        aws.stepfunctions.stop_execution(executionArn=manifest["training_execution_arn"])  # not needed here
    finally:
        reconfigure(aws, fn, env)


def reconfigure(aws, fn: str, env: dict) -> None:
    """Change the function's environment and wait until the new version serves and the old version's event poller
    is gone: LocalStack 4.14 runs both pollers for a moment after an update, and the old one drops what it
    receives after its stop (invisible for the function timeout + 60 s, localstack/localstack#10831)."""
    aws.lambda_.update_function_configuration(FunctionName=fn, Environment={"Variables": env})
    aws.lambda_.get_waiter("function_updated_v2").wait(FunctionName=fn)
    response = aws.lambda_.invoke(FunctionName=fn, Payload=b'{"Records": []}')
    assert json.loads(response["Payload"].read()) == {"results": []}
    time.sleep(6)  # its last long poll (2 s) and join (3 s) end within this


@pytest.fixture(scope="module")
def pima_train_csv() -> bytes:
    """The training rows with glucose 60 mg/dL higher: a population the model was not trained on."""
    from training.data import load_bundled

    frame = load_bundled("train").frame.drop(columns=["diabetes", "insulin"])
    frame = frame.assign(glucose=(frame["glucose"] + 60).clip(upper=400), bmi=frame["bmi"].fillna(30))
    return frame.to_csv(index=False).encode()
