"""Client side of batch scoring: upload a file to the inbox, then follow its result folder in the outbox."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from batch_scoring.service import CLAIM, FAILED, INBOX, MANIFEST, OUTBOX, get_json, result_name


@dataclass
class Upload:
    bucket: str
    key: str
    version_id: str | None
    name: str

    @property
    def prefix(self) -> str:
        return f"{OUTBOX}{self.name}/"


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


def wait_for_result(
    s3,
    upload: Upload,
    timeout_s: float,
    on_progress: Callable[[str, int], None] | None = None,
    poll_s: float = 1.0,
) -> tuple[str, dict]:
    """("manifest", manifest) or ("failed", failed.json) once one appears; progress from the worker's claim."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        manifest = get_json(s3, upload.bucket, upload.prefix + MANIFEST)
        if manifest is not None:
            return "manifest", manifest
        failed = get_json(s3, upload.bucket, upload.prefix + FAILED)
        if failed is not None and failed.get("kind") != "internal":  # internal errors are retried by the platform
            return "failed", failed
        claim = get_json(s3, upload.bucket, upload.prefix + CLAIM)
        if on_progress:
            on_progress(
                "scoring" if claim else "waiting for the batch-score function", (claim or {}).get("rows_read", 0)
            )
        time.sleep(poll_s)
    raise WaitTimeout(
        f"no result in s3://{upload.bucket}/{upload.prefix} after {timeout_s:.0f} s; the function may still be "
        "running (see its logs) or was never invoked (is the inbox notification deployed?)"
    )
