"""A quick end-to-end check of a running local cloud: S3, a Python Lambda, CloudWatch, MLflow.

Used by `diabetes-risk local check` (and so by `make demo`) to prove the ground works before anything
is deployed on it.
"""

from __future__ import annotations

import contextlib
import io
import json
import time
import zipfile
from collections.abc import Callable

import boto3

from .settings import LocalCloudSettings

CHECK_FUNCTION = "dr-local-check"
CHECK_BUCKET = "dr-local-check"
LAMBDA_ROLE = "arn:aws:iam::000000000000:role/lambda-role"

_HANDLER_SOURCE = """
import os, boto3
def handler(event, context):
    s3 = boto3.client("s3")
    body = s3.get_object(Bucket=event["bucket"], Key=event["key"])["Body"].read().decode()
    return {"read": body, "function": context.function_name}
"""


def zip_source(files: dict[str, str]) -> bytes:
    """A Lambda zip package from {filename: source}."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, source in files.items():
            zf.writestr(name, source)
    return buf.getvalue()


def clients(settings: LocalCloudSettings, *names: str):
    kwargs = {
        "endpoint_url": settings.localstack_url,
        "region_name": settings.region,
        "aws_access_key_id": "test",
        "aws_secret_access_key": "test",
    }
    return [boto3.client(name, **kwargs) for name in names]


def deploy_function(
    lam,
    name: str,
    source: str,
    timeout: int = 10,
    env: dict | None = None,
    handler: str = "app.handler",
    memory: int = 128,
) -> str:
    """Create (or replace) a python3.13 zip function and wait until it is Active."""
    with contextlib.suppress(lam.exceptions.ResourceNotFoundException):
        lam.delete_function(FunctionName=name)
    arn = lam.create_function(
        FunctionName=name,
        Runtime="python3.13",
        Role=LAMBDA_ROLE,
        Handler=handler,
        Code={"ZipFile": zip_source({"app.py": source})},
        Timeout=timeout,
        MemorySize=memory,
        Environment={"Variables": env or {}},
    )["FunctionArn"]
    lam.get_waiter("function_active_v2").wait(FunctionName=name, WaiterConfig={"Delay": 0.5})
    return arn


CHECK_TABLE = "dr-local-check"


def dynamodb_check(settings: LocalCloudSettings) -> None:
    """Create a table, write an item once (a second conditional write must be refused), read it back."""
    (ddb,) = clients(settings, "dynamodb")
    with contextlib.suppress(ddb.exceptions.ResourceNotFoundException):
        ddb.delete_table(TableName=CHECK_TABLE)
    ddb.create_table(
        TableName=CHECK_TABLE,
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    ddb.get_waiter("table_exists").wait(TableName=CHECK_TABLE, WaiterConfig={"Delay": 0.2})
    item = {"id": {"S": "check"}, "n": {"N": "1"}}
    ddb.put_item(TableName=CHECK_TABLE, Item=item, ConditionExpression="attribute_not_exists(id)")
    try:
        ddb.put_item(TableName=CHECK_TABLE, Item=item, ConditionExpression="attribute_not_exists(id)")
    except ddb.exceptions.ConditionalCheckFailedException:
        pass
    else:
        raise RuntimeError("DynamoDB accepted a conditional write it should have refused")
    found = ddb.query(
        TableName=CHECK_TABLE, KeyConditionExpression="id = :id", ExpressionAttributeValues={":id": {"S": "check"}}
    )["Items"]
    if found != [item]:
        raise RuntimeError(f"DynamoDB query returned {found}")
    ddb.delete_table(TableName=CHECK_TABLE)


def run_check(settings: LocalCloudSettings, progress: Callable[[str], None]) -> dict:
    """Returns what was measured; raises if any part of the local cloud does not work."""
    from training.imports import import_mlflow

    mlflow = import_mlflow()  # Feast's MLflow plugin loaded the fast way (training/imports.py)

    s3, lam = clients(settings, "s3", "lambda")
    progress("S3: create a bucket and an object")
    s3.create_bucket(Bucket=CHECK_BUCKET)
    s3.put_object(Bucket=CHECK_BUCKET, Key="hello.txt", Body=b"hello from S3")

    progress("Lambda: deploy a python3.13 function and invoke it (cold, then warm)")
    deploy_function(lam, CHECK_FUNCTION, _HANDLER_SOURCE)
    timings = []
    for _ in range(2):
        t0 = time.perf_counter()
        reply = lam.invoke(
            FunctionName=CHECK_FUNCTION, Payload=json.dumps({"bucket": CHECK_BUCKET, "key": "hello.txt"})
        )
        timings.append(time.perf_counter() - t0)
        payload = json.loads(reply["Payload"].read())
        if reply.get("FunctionError") or payload.get("read") != "hello from S3":
            raise RuntimeError(f"Lambda check failed: {payload}")

    progress("DynamoDB: a table, a conditional write, a query (the moto-backed provider, no Java)")
    dynamodb_check(settings)

    progress("MLflow: log a run with an artifact (stored in the local S3)")
    mlflow.set_tracking_uri(settings.mlflow_url)
    mlflow.set_experiment("local-check")
    with mlflow.start_run() as run:
        mlflow.log_metric("check", 1.0)
        mlflow.log_text("local cloud check", "check.txt")
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=settings.mlflow_bucket).get("Contents", [])]
    if not any(k.endswith("check.txt") and run.info.run_id in k for k in keys):
        raise RuntimeError("MLflow artifact did not land in the local S3")
    lam.delete_function(FunctionName=CHECK_FUNCTION)
    return {
        "lambda_cold_s": round(timings[0], 3),
        "lambda_warm_s": round(timings[1], 3),
        "mlflow_run_id": run.info.run_id,
    }
