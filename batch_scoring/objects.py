"""The JSON objects a batch leaves in S3 (manifest, failed.json), read without the scoring stack: the CLI awaits a
result with these alone (importing the service module loads pandas and the ONNX runtime)."""

from __future__ import annotations

import json

from botocore.exceptions import ClientError


def missing(exc: ClientError) -> bool:
    """The object (or its version) is not there."""
    return exc.response["Error"]["Code"] in ("404", "NoSuchKey", "NotFound")


def get_json(s3, bucket: str, key: str) -> dict | None:
    """A JSON object from S3, or None when there is none (yet)."""
    try:
        return json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    except ClientError as exc:
        if missing(exc):
            return None
        raise
