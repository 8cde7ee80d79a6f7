"""Client side of batch scoring: upload a file to the inbox, then follow its result folder in the outbox."""

from __future__ import annotations

import json
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from batch_scoring.naming import FAILED, INBOX, MANIFEST, OUTBOX, result_name
from batch_scoring.objects import get_json


@dataclass
class Upload:
    bucket: str
    key: str
    version_id: str | None
    name: str

    @property
    def prefix(self) -> str:
        return f"{OUTBOX}{self.name}/"


RETRIED = ("internal", "no_model")  # failures Lambda retries: wait for the retry, or for the dead-letter queue


class WaitTimeout(TimeoutError):
    pass


def upload(
    s3, bucket: str, path: Path, key: str | None = None, progress: Callable[[int], None] | None = None
) -> Upload:
    """Multipart for large files; the object version (or ETag) names the result folder."""
    key = key or f"{INBOX}{path.name}"
    if not key.startswith(INBOX):
        key = INBOX + key.lstrip("/")
    s3.upload_file(str(path), bucket, key, Callback=progress)
    head = s3.head_object(Bucket=bucket, Key=key)
    version = head.get("VersionId")
    version = None if version in (None, "null") else version
    return Upload(bucket, key, version, result_name(key, version, head["ETag"]))


def dead_letters(sqs, queue_url: str, limit: int = 50) -> list[dict]:
    """What an S3-invoked function gave up on, peeked (left in the queue): one record per S3 object in each
    event, {"bucket", "key", "version_id", "condition", "attempts", "error"}."""
    counted = (
        "ApproximateNumberOfMessages",
        "ApproximateNumberOfMessagesNotVisible",
        "ApproximateNumberOfMessagesDelayed",
    )
    counts = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=list(counted)).get("Attributes", {})
    if all(counts.get(name) == "0" for name in counted):
        # Every count says empty: skip the two one-second polls an empty queue needs before it counts as empty
        # (`runs` took 3 s). A count missing from the answer means polling as before. The counts lag by up to a
        # minute on AWS, so a record that arrived that recently shows on the next look.
        return []
    out, seen, empty = [], set(), 0
    for _ in range(max(limit // 10, 1) + 2):
        # SQS answers from a sample of its servers: an empty answer is not proof of an empty queue; ask again
        messages = sqs.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=10, VisibilityTimeout=0, WaitTimeSeconds=1
        ).get("Messages", [])
        fresh = [m for m in messages if m["MessageId"] not in seen]
        if not fresh:
            empty += 1
            if empty >= 2:
                break
            continue
        for message in fresh:
            seen.add(message["MessageId"])
            try:
                body = json.loads(message["Body"])
                records = (body.get("requestPayload") or {}).get("Records") or []
            except (ValueError, AttributeError):
                continue
            context = body.get("requestContext") or {}
            for record in records:
                s3 = record.get("s3") or {}
                obj = s3.get("object") or {}
                out.append(
                    {
                        "bucket": (s3.get("bucket") or {}).get("name"),
                        "key": urllib.parse.unquote_plus(obj.get("key", "")),
                        "version_id": obj.get("versionId"),
                        "condition": context.get("condition"),
                        "attempts": context.get("approximateInvokeCount"),
                        "error": body.get("responsePayload"),
                    }
                )
    return out[:limit]


def dead_letter(sqs, queue_url: str, bucket: str, key: str, version_id: str | None) -> dict | None:
    """Lambda's on-failure record for this object version, if it gave up on it (peeked: left in the queue for
    the operator). {"condition": "RetriesExhausted" | "EventAgeExceeded", "attempts", "error": {...}, ...}."""
    for record in dead_letters(sqs, queue_url):
        if record["bucket"] == bucket and record["key"] == key and record["version_id"] in (None, version_id):
            return record
    return None


def wait_for_result(
    s3,
    upload: Upload,
    timeout_s: float,
    on_progress: Callable[[str, int], None] | None = None,
    poll_s: float = 1.0,
    dead_letters: Callable[[], dict | None] | None = None,
) -> tuple[str, dict]:
    """("manifest", manifest), ("failed", failed.json) once one appears, or ("dead_letter", record) when Lambda
    gave up on the file after its retries (`dead_letters` looks in the function's on-failure queue)."""
    deadline = time.monotonic() + timeout_s
    started = time.monotonic()
    while time.monotonic() < deadline:
        manifest = get_json(s3, upload.bucket, upload.prefix + MANIFEST)
        if manifest is not None:
            return "manifest", manifest
        failed = get_json(s3, upload.bucket, upload.prefix + FAILED)
        if failed is not None and failed.get("kind") not in RETRIED:
            return "failed", failed
        given_up = dead_letters() if dead_letters else None
        if given_up is not None:
            return "dead_letter", given_up | {"failed": failed}
        if on_progress:
            state = "retrying after an internal error" if failed else "waiting for the batch-score function"
            on_progress(state, int(time.monotonic() - started))
        time.sleep(poll_s)
    raise WaitTimeout(
        f"no result in s3://{upload.bucket}/{upload.prefix} after {timeout_s:.0f} s; the function may still be "
        "running (see its logs) or was never invoked (is the inbox notification deployed?)"
    )
