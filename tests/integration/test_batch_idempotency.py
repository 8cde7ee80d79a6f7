"""Idempotency and failures of batch scoring on the local cloud, the AWS way: Powertools idempotency records in
DynamoDB (the moto-backed provider), Lambda's asynchronous retries, and the on-failure dead-letter queue.

The session's local cloud retries asynchronous invocations after LAMBDA_RETRY_BASE_DELAY (5 s here, about a
minute on AWS). Events are invoked asynchronously by the test itself, as S3 would (the notification is paused), so
that no notification races a configuration change. The timeout case (the in-progress record expiring with the
invocation) is covered in the unit tests: on LocalStack an asynchronous invoke soon after a configuration change
(a lowered timeout) is delayed by a minute or more (localstack/localstack#10831)."""

from __future__ import annotations

import json
import time

import pytest

from batch_scoring.service import result_name
from diabetes_risk.batch_client import Upload, dead_letter, wait_for_result
from inference_core.contracts import EXAMPLE_PATIENT
from tests.events.loader import s3_event

pytestmark = pytest.mark.integration
FEATURES = list(EXAMPLE_PATIENT)


@pytest.fixture(scope="module")
def batch(aws, deployed, champion_run):
    """The deployed stack with the inbox notification paused: each test delivers its events itself."""
    bucket = deployed["BatchBucket"]
    saved = aws.s3.get_bucket_notification_configuration(Bucket=bucket)
    saved.pop("ResponseMetadata", None)
    aws.s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration={})
    yield deployed
    aws.s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration=saved)


def csv_rows(n: int) -> bytes:
    row = ",".join(str(v) for v in EXAMPLE_PATIENT.values())
    return (",".join(FEATURES) + "\n" + "\n".join([row] * n) + "\n").encode()


def put(aws, bucket: str, key: str, body: bytes) -> Upload:
    """Upload (the notification is paused) and name the result folder."""
    response = aws.s3.put_object(Bucket=bucket, Key=key, Body=body)
    version = response.get("VersionId")
    return Upload(bucket, key, version, result_name(key, version, response["ETag"]))


# LocalStack 4.14 starts the updated version's event poller before it stops the old one (lambda_service.py
# update_version_state), and the old poller drops what its last long poll (WaitTimeSeconds=2, then a 3 s join)
# receives after its stop: invisible for the function timeout + 60 s, 16 minutes for batch-score
# (localstack/localstack#10831). An async invoke must wait until that window has passed.
OLD_POLLER_GONE_S = 6


def reconfigure(aws, fn: str, **changes) -> dict:
    """Change the function and wait until the new version serves (one synchronous invoke, no records: nothing to
    do) and the old version's event poller can no longer take an asynchronous invoke (see OLD_POLLER_GONE_S)."""
    before = aws.lambda_.get_function_configuration(FunctionName=fn)
    aws.lambda_.update_function_configuration(FunctionName=fn, **changes)
    aws.lambda_.get_waiter("function_updated_v2").wait(FunctionName=fn)
    reply = aws.lambda_.invoke(FunctionName=fn, Payload=b'{"Records": []}')
    assert json.loads(reply["Payload"].read()) == {"results": []}
    time.sleep(OLD_POLLER_GONE_S)
    return before


def manifests(aws, bucket: str, upload: Upload) -> list[str]:
    listing = aws.s3.list_objects_v2(Bucket=bucket, Prefix=upload.prefix).get("Contents", [])
    return [o["Key"] for o in listing if o["Key"].endswith("manifest.json")]


def test_a_duplicate_after_completion_and_during_a_live_invocation_do_nothing(aws, batch, local_cloud):
    bucket, fn = batch["BatchBucket"], batch["BatchFunctionName"]
    upload = put(aws, bucket, "inbox/idempotent/twice.csv", csv_rows(1_500_000))  # a few seconds of work
    event = json.dumps(s3_event(bucket, upload.key, upload.version_id)).encode()
    aws.lambda_.invoke(FunctionName=fn, InvocationType="Event", Payload=event)
    wait_until(lambda: in_progress_records(local_cloud, batch), 60, "the first invocation to start scoring")
    assert manifests(aws, bucket, upload) == []  # still working on it
    during = json.loads(aws.lambda_.invoke(FunctionName=fn, Payload=event)["Payload"].read())
    assert during["results"][0]["status"] == "in_progress"
    kind, manifest = wait_for_result(aws.s3, upload, 120, poll_s=0.5)
    assert kind == "manifest" and manifest["rows_scored"] == 1_500_000
    after = json.loads(aws.lambda_.invoke(FunctionName=fn, Payload=event)["Payload"].read())
    assert after["results"][0]["status"] == "duplicate"
    assert manifests(aws, bucket, upload) == [upload.prefix + "manifest.json"]


def test_a_function_killed_mid_file_is_completed_by_lambdas_retry(aws, batch, local_cloud):
    """The batch function's process is killed while it scores (as an out-of-memory kill or a crash would end it):
    its in-progress record still has minutes to run, but Lambda's retry carries the same request id and takes it
    over, so the file is scored once, a few seconds later, not 'in progress' until the record expires."""
    import psutil

    bucket, fn = batch["BatchBucket"], batch["BatchFunctionName"]
    upload = put(aws, bucket, "inbox/idempotent/killed.csv", csv_rows(1_500_000))
    event = json.dumps(s3_event(bucket, upload.key, upload.version_id)).encode()
    aws.lambda_.invoke(FunctionName=fn, InvocationType="Event", Payload=event)
    wait_until(lambda: in_progress_records(local_cloud, batch), 60, "the first attempt to start scoring")
    killed = []
    for proc in psutil.process_iter():
        try:
            if proc.environ().get("AWS_LAMBDA_FUNCTION_NAME") == fn:
                proc.kill()
                killed.append(proc.pid)
        except psutil.Error:
            continue
    assert killed, "no process of the batch function was found"
    assert manifests(aws, bucket, upload) == []
    kind, manifest = wait_for_result(aws.s3, upload, 120, poll_s=0.5)  # the retry comes after 5 s here
    assert kind == "manifest" and manifest["rows_scored"] == 1_500_000
    assert manifests(aws, bucket, upload) == [upload.prefix + "manifest.json"]
    assert in_progress_records(local_cloud, batch) == []


def test_an_always_failing_file_ends_in_the_dead_letter_queue_with_its_reason(aws, batch, local_cloud):
    from localcloud.smoke import clients

    bucket, fn = batch["BatchBucket"], batch["BatchFunctionName"]
    upload = put(aws, bucket, "inbox/idempotent/always-fails.csv", csv_rows(10))
    event = json.dumps(s3_event(bucket, upload.key, upload.version_id)).encode()
    before = reconfigure(
        aws, fn, Environment={"Variables": before_env(aws, fn) | {"DR_WORK_DIR": "/proc/no-scratch-space-here"}}
    )
    (sqs,) = clients(local_cloud, "sqs")
    queue = batch["BatchDeadLetterQueueUrl"]
    try:
        aws.lambda_.invoke(FunctionName=fn, InvocationType="Event", Payload=event)
        # three attempts, 5 s and 10 s apart here (LAMBDA_RETRY_BASE_DELAY 5 s), then the on-failure destination
        deadline, record = time.monotonic() + 120, None
        while time.monotonic() < deadline and record is None:
            record = dead_letter(sqs, queue, bucket, upload.key, upload.version_id)
            time.sleep(1)
    finally:
        reconfigure(aws, fn, Environment=before["Environment"])
    assert record is not None, "the event never reached the dead-letter queue"
    assert record["condition"] == "RetriesExhausted" and record["attempts"] == 3
    assert "no-scratch-space-here" in json.dumps(record["error"])
    failed = json.loads(aws.s3.get_object(Bucket=bucket, Key=upload.prefix + "failed.json")["Body"].read())
    assert failed["kind"] == "internal" and "no-scratch-space-here" in failed["reason"]
    assert manifests(aws, bucket, upload) == []


def wait_until(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def in_progress_records(cloud, outputs: dict) -> list[dict]:
    from localcloud.smoke import clients

    (ddb,) = clients(cloud, "dynamodb")
    items = ddb.scan(TableName=outputs["IdempotencyTableName"])["Items"]
    return [i for i in items if i.get("status", {}).get("S") == "INPROGRESS"]


def before_env(aws, fn: str) -> dict:
    return aws.lambda_.get_function_configuration(FunctionName=fn)["Environment"]["Variables"]
