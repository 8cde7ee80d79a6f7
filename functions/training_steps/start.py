"""Start a training run when a new dataset lands under data/incoming/ in the data bucket.

S3 delivers at least once: the execution name is derived from the object's key and ETag, so a repeated
notification finds the execution already there and starts nothing new."""

from __future__ import annotations

import hashlib
import json
import urllib.parse
from typing import Any

import boto3
from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.data_classes import S3Event, event_source
from pydantic_settings import BaseSettings, SettingsConfigDict

logger = Logger(service="diabetes-risk-training-trigger")


class StartSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DR_", extra="ignore")
    state_machine_arn: str
    incoming_prefix: str = "data/incoming/"


SETTINGS = StartSettings()
SFN = boto3.client("stepfunctions")


def execution_name(key: str, etag: str) -> str:
    digest = hashlib.sha256(f"{key}\0{etag}".encode()).hexdigest()[:16]
    stem = "".join(c if c.isalnum() or c in "-_" else "-" for c in key.rsplit("/", 1)[-1])[:50]
    return f"data-{stem}-{digest}"


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
        name = execution_name(key, record.s3.get_object.etag or "")
        payload = {"train_uri": f"s3://{record.s3.bucket.name}/{key}", "holdout_uri": "bundled"}
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
