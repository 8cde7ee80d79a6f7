"""The AWS services the project builds on, as the local cloud runs them: S3 → Lambda, Step Functions,
API Gateway REST proxy, CloudWatch metrics, MLflow artifacts in S3."""

from __future__ import annotations

import json
import time
import urllib.request
import uuid
from datetime import UTC, datetime, timedelta

import mlflow
import pytest

from localcloud.smoke import deploy_function

pytestmark = pytest.mark.integration

SFN_ROLE = "arn:aws:iam::000000000000:role/sfn-role"


def wait_for_object(s3, bucket: str, key: str, timeout: float = 30.0) -> bytes:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            return s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        except s3.exceptions.NoSuchKey:
            time.sleep(0.3)
    raise AssertionError(f"s3://{bucket}/{key} never appeared")


def test_object_created_in_s3_invokes_lambda(aws):
    bucket = "it-notify-" + uuid.uuid4().hex[:6]
    source = """
import boto3, urllib.parse
def handler(event, context):
    record = event["Records"][0]
    key = urllib.parse.unquote_plus(record["s3"]["object"]["key"])
    boto3.client("s3").put_object(Bucket=record["s3"]["bucket"]["name"], Key="seen/" + key.split("/")[-1],
                                  Body=record["eventName"].encode())
    return {"key": key}
"""
    arn = deploy_function(aws.lambda_, "it-on-upload", source)
    aws.s3.create_bucket(Bucket=bucket)
    # Declared on the bucket's own notification configuration (what CDK's CfnBucket does); CDK's
    # custom-resource route does not run on LocalStack.
    aws.s3.put_bucket_notification_configuration(
        Bucket=bucket,
        NotificationConfiguration={
            "LambdaFunctionConfigurations": [
                {
                    "LambdaFunctionArn": arn,
                    "Events": ["s3:ObjectCreated:*"],
                    "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": "inbox/"}]}},
                }
            ]
        },
    )
    aws.s3.put_object(Bucket=bucket, Key="inbox/day one.csv", Body=b"a,b\n1,2\n")
    assert wait_for_object(aws.s3, bucket, "seen/day one.csv").startswith(b"ObjectCreated")


FLAKY = """
import boto3
class TransientError(Exception):
    pass
def handler(event, context):
    s3 = boto3.client("s3")
    key = "attempts/" + event["run"]
    try:
        s3.head_object(Bucket=event["bucket"], Key=key)
    except s3.exceptions.ClientError:
        s3.put_object(Bucket=event["bucket"], Key=key, Body=b"1")
        raise TransientError("first attempt fails on purpose")
    return {"value": event["value"] * 2}
"""

ALWAYS_FAILS = """
def handler(event, context):
    raise ValueError("value too large: " + str(event["value"]))
"""


def test_state_machine_with_task_choice_retry_and_catch(aws):
    bucket = "it-sfn-" + uuid.uuid4().hex[:6]
    aws.s3.create_bucket(Bucket=bucket)
    flaky = deploy_function(aws.lambda_, "it-sfn-flaky", FLAKY)
    failing = deploy_function(aws.lambda_, "it-sfn-fails", ALWAYS_FAILS)
    definition = {
        "StartAt": "Double",
        "States": {
            "Double": {
                "Type": "Task",
                "Resource": flaky,
                "ResultPath": "$.doubled",
                "Retry": [
                    {
                        "ErrorEquals": ["TransientError"],
                        "IntervalSeconds": 1,
                        "MaxAttempts": 2,
                        "BackoffRate": 2.0,
                    }
                ],
                "Next": "Big?",
            },
            "Big?": {
                "Type": "Choice",
                "Choices": [{"Variable": "$.doubled.value", "NumericGreaterThan": 10, "Next": "Check"}],
                "Default": "Small",
            },
            "Small": {"Type": "Pass", "Result": "small", "ResultPath": "$.size", "End": True},
            "Check": {
                "Type": "Task",
                "Resource": failing,
                "InputPath": "$.doubled",
                "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "Handled"}],
                "End": True,
            },
            "Handled": {"Type": "Pass", "Result": "big", "ResultPath": "$.size", "End": True},
        },
    }
    sm = aws.stepfunctions.create_state_machine(
        name="it-flow-" + uuid.uuid4().hex[:6], definition=json.dumps(definition), roleArn=SFN_ROLE
    )["stateMachineArn"]

    def run(value: int) -> dict:
        execution = aws.stepfunctions.start_execution(
            stateMachineArn=sm, input=json.dumps({"bucket": bucket, "run": uuid.uuid4().hex, "value": value})
        )["executionArn"]
        deadline = time.monotonic() + 60
        while (desc := aws.stepfunctions.describe_execution(executionArn=execution))["status"] == "RUNNING":
            assert time.monotonic() < deadline, "execution did not finish"
            time.sleep(0.5)
        history = aws.stepfunctions.get_execution_history(executionArn=execution)["events"]
        return {
            "status": desc["status"],
            "output": json.loads(desc.get("output") or "null"),
            "failures": sum(e["type"] == "LambdaFunctionFailed" for e in history),
        }

    big = run(7)
    assert big["status"] == "SUCCEEDED"
    assert big["output"]["doubled"] == {"value": 14}
    assert big["output"]["size"] == "big"
    assert big["output"]["error"]["Error"] == "ValueError"
    assert "value too large: 14" in big["output"]["error"]["Cause"]
    assert big["failures"] == 2  # one retried transient failure, one caught failure

    small = run(2)
    assert small["status"] == "SUCCEEDED"
    assert small["output"]["size"] == "small" and small["failures"] == 1


def test_rest_api_lambda_proxy_answers_over_http(aws, local_cloud):
    source = """
import json
def handler(event, context):
    name = (event.get("queryStringParameters") or {}).get("name", "nobody")
    return {"statusCode": 200, "headers": {"Content-Type": "application/json"},
            "body": json.dumps({"hello": name, "path": event["path"], "method": event["httpMethod"]})}
"""
    arn = deploy_function(aws.lambda_, "it-api", source)
    api = aws.apigateway.create_rest_api(name="it-api")["id"]
    root = aws.apigateway.get_resources(restApiId=api)["items"][0]["id"]
    resource = aws.apigateway.create_resource(restApiId=api, parentId=root, pathPart="hello")["id"]
    aws.apigateway.put_method(restApiId=api, resourceId=resource, httpMethod="GET", authorizationType="NONE")
    aws.apigateway.put_integration(
        restApiId=api,
        resourceId=resource,
        httpMethod="GET",
        type="AWS_PROXY",
        integrationHttpMethod="POST",
        uri=f"arn:aws:apigateway:{local_cloud.region}:lambda:path/2015-03-31/functions/{arn}/invocations",
    )
    aws.apigateway.create_deployment(restApiId=api, stageName="test")
    url = f"{local_cloud.localstack_url}/_aws/execute-api/{api}/test/hello?name=ada"
    assert url.startswith("http://127.0.0.1:")
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url, timeout=30) as response:
        assert response.status == 200
        body = json.loads(response.read())
    assert body == {"hello": "ada", "path": "/hello", "method": "GET"}


def test_cloudwatch_put_then_get_metric_data(aws):
    namespace = "DiabetesRisk/IT-" + uuid.uuid4().hex[:6]
    now = datetime.now(UTC)
    aws.cloudwatch.put_metric_data(
        Namespace=namespace,
        MetricData=[
            {
                "MetricName": "Predictions",
                "Value": 42.0,
                "Unit": "Count",
                "Timestamp": now,
                "Dimensions": [{"Name": "Band", "Value": "high"}],
            }
        ],
    )
    result = aws.cloudwatch.get_metric_data(
        MetricDataQueries=[
            {
                "Id": "p",
                "MetricStat": {
                    "Metric": {
                        "Namespace": namespace,
                        "MetricName": "Predictions",
                        "Dimensions": [{"Name": "Band", "Value": "high"}],
                    },
                    "Period": 60,
                    "Stat": "Sum",
                },
            }
        ],
        StartTime=now - timedelta(minutes=5),
        EndTime=now + timedelta(minutes=5),
    )["MetricDataResults"][0]
    assert result["Values"] == [42.0]


def test_mlflow_artifact_lands_in_local_s3(aws, local_cloud):
    mlflow.set_tracking_uri(local_cloud.mlflow_url)
    mlflow.set_experiment("it-artifacts")
    with mlflow.start_run() as run:
        mlflow.log_param("family", "logistic_regression")
        mlflow.log_dict({"auc": 0.87}, "eval/metrics.json")
    keys = [o["Key"] for o in aws.s3.list_objects_v2(Bucket=local_cloud.mlflow_bucket)["Contents"]]
    key = next(k for k in keys if run.info.run_id in k and k.endswith("eval/metrics.json"))
    body = aws.s3.get_object(Bucket=local_cloud.mlflow_bucket, Key=key)["Body"].read()
    assert json.loads(body) == {"auc": 0.87}


def test_dynamodb_without_java_conditional_writes_ttl_query_and_cloudformation(aws, local_cloud):
    """The moto-backed DynamoDB provider (`dynamodb:moto`): what Powertools idempotency needs."""
    import time

    from localcloud.smoke import clients, dynamodb_check

    dynamodb_check(local_cloud)  # `local check`'s own part: table, conditional put refused, query
    ddb, cfn = clients(local_cloud, "dynamodb", "cloudformation")
    template = {
        "Resources": {
            "Table": {
                "Type": "AWS::DynamoDB::Table",
                "Properties": {
                    "TableName": "dr-it-idempotency",
                    "BillingMode": "PAY_PER_REQUEST",
                    "KeySchema": [{"AttributeName": "id", "KeyType": "HASH"}],
                    "AttributeDefinitions": [{"AttributeName": "id", "AttributeType": "S"}],
                    "TimeToLiveSpecification": {"AttributeName": "expiration", "Enabled": True},
                },
            }
        }
    }
    cfn.create_stack(StackName="dr-it-ddb", TemplateBody=json.dumps(template))
    cfn.get_waiter("stack_create_complete").wait(StackName="dr-it-ddb", WaiterConfig={"Delay": 1})
    ttl = ddb.describe_time_to_live(TableName="dr-it-idempotency")["TimeToLiveDescription"]
    assert ttl == {"TimeToLiveStatus": "ENABLED", "AttributeName": "expiration"}
    # the conditional write Powertools makes: only if absent, or expired
    now = int(time.time())
    condition = "attribute_not_exists(id) OR expiration < :now"
    item = {"id": {"S": "k"}, "expiration": {"N": str(now + 60)}, "status": {"S": "INPROGRESS"}}
    ddb.put_item(
        TableName="dr-it-idempotency",
        Item=item,
        ConditionExpression=condition,
        ExpressionAttributeValues={":now": {"N": str(now)}},
    )
    with pytest.raises(ddb.exceptions.ConditionalCheckFailedException):
        ddb.put_item(
            TableName="dr-it-idempotency",
            Item=item,
            ConditionExpression=condition,
            ExpressionAttributeValues={":now": {"N": str(now)}},
        )
    expired = item | {"expiration": {"N": str(now - 1)}}
    ddb.put_item(TableName="dr-it-idempotency", Item=expired)
    ddb.put_item(
        TableName="dr-it-idempotency",
        Item=item,
        ConditionExpression=condition,
        ExpressionAttributeValues={":now": {"N": str(now)}},
    )  # an expired record is taken over
    # a stack update adds a table with a sort key; a range query on it
    template["Resources"]["Runs"] = {
        "Type": "AWS::DynamoDB::Table",
        "Properties": {
            "TableName": "dr-it-runs",
            "BillingMode": "PAY_PER_REQUEST",
            "KeySchema": [{"AttributeName": "model", "KeyType": "HASH"}, {"AttributeName": "at", "KeyType": "RANGE"}],
            "AttributeDefinitions": [
                {"AttributeName": "model", "AttributeType": "S"},
                {"AttributeName": "at", "AttributeType": "N"},
            ],
        },
    }
    cfn.update_stack(StackName="dr-it-ddb", TemplateBody=json.dumps(template))
    cfn.get_waiter("stack_update_complete").wait(StackName="dr-it-ddb", WaiterConfig={"Delay": 1})
    for at in (1, 2, 3):
        ddb.put_item(TableName="dr-it-runs", Item={"model": {"S": "m"}, "at": {"N": str(at)}})
    found = ddb.query(
        TableName="dr-it-runs",
        KeyConditionExpression="model = :m AND #at > :from",
        ExpressionAttributeNames={"#at": "at"},
        ExpressionAttributeValues={":m": {"S": "m"}, ":from": {"N": "1"}},
    )["Items"]
    assert [int(i["at"]["N"]) for i in found] == [2, 3]
    assert ddb.describe_table(TableName="dr-it-idempotency")["Table"]["TableStatus"] == "ACTIVE"  # untouched
    cfn.delete_stack(StackName="dr-it-ddb")
