"""Start a training run when a new dataset lands under data/incoming/ in the data bucket.

S3 delivers at least once: the execution name is derived from the object's key and **version** (the data bucket
is versioned; the ETag when a bucket is not), so a repeated notification finds the execution already there and
starts nothing new, while a new upload of the same bytes is a new version and trains again. The run reads exactly
that version, even if the key is overwritten meanwhile. Names are ASCII and at most 80 characters, as Step
Functions requires, whatever the file is called."""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
import urllib.parse
from typing import Any

import boto3
from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.data_classes import S3Event, event_source
from pydantic_settings import BaseSettings, SettingsConfigDict

logger = Logger(service="diabetes-risk-training-trigger")
MAX_NAME = 80  # Step Functions' limit for an execution name


class StartSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DR_", extra="ignore")
    state_machine_arn: str
    incoming_prefix: str = "data/incoming/"


SETTINGS = StartSettings()
SFN = boto3.client("stepfunctions")


def execution_name(key: str, version: str) -> str:
    """`data-<readable ASCII stem>-<16 hex of key + version>`: [A-Za-z0-9_-] only, at most 80 characters."""
    digest = hashlib.sha256(f"{key}\0{version}".encode()).hexdigest()[:16]
    stem = unicodedata.normalize("NFKD", key.rsplit("/", 1)[-1]).encode("ascii", "ignore").decode()
    stem = re.sub(r"[^A-Za-z0-9_-]+", "-", stem).strip("-") or "file"
    room = MAX_NAME - len("data--") - len(digest)
    return f"data-{stem[:room]}-{digest}"


def _exists(name: str) -> bool:
    execution_arn = SETTINGS.state_machine_arn.replace(":stateMachine:", ":execution:") + f":{name}"
    try:
        SFN.describe_execution(executionArn=execution_arn)
        return True
    except SFN.exceptions.ExecutionDoesNotExist:
        return False


@logger.inject_lambda_context(clear_state=True)
@event_source(data_class=S3Event)
def handler(event: S3Event, context: Any) -> dict:
    started, skipped = [], []
    for record in event.records:
        key = urllib.parse.unquote_plus(record.s3.get_object.key)
        if not key.startswith(SETTINGS.incoming_prefix) or key.endswith("/"):
            skipped.append(key)
            continue
        version_id = record.s3.get_object.version_id
        version_id = None if version_id in (None, "", "null") else version_id
        name = execution_name(key, version_id or record.s3.get_object.etag or "")
        payload = {
            "train_uri": f"s3://{record.s3.bucket.name}/{key}",
            "train_version_id": version_id,
            "holdout_uri": "bundled",
        }
        if _exists(name):
            skipped.append(key)
            continue
        try:  # StartExecution is itself idempotent for the same name and input; a race lands here
            SFN.start_execution(stateMachineArn=SETTINGS.state_machine_arn, name=name, input=json.dumps(payload))
            started.append(name)
        except SFN.exceptions.ExecutionAlreadyExists:
            skipped.append(key)
    logger.info("new data", extra={"started": started, "skipped": skipped})
    return {"started": started, "skipped": skipped}
