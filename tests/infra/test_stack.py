"""The CDK app synthesized for both targets: resources, security properties, least privilege, the state
machine's Retry/Catch, and cdk-nag's AwsSolutions checks."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from aws_cdk.assertions import Annotations, Match, Template

ROOT = Path(__file__).resolve().parents[2]


def _definition(template: Template) -> dict:
    """The ASL with CDK tokens (function ARNs) replaced by placeholders, parsed."""
    (sm,) = template.find_resources("AWS::StepFunctions::StateMachine").values()
    body = sm["Properties"]["DefinitionString"]
    if isinstance(body, dict):
        parts = body["Fn::Join"][1]
        body = "".join(p if isinstance(p, str) else "arn:token" for p in parts)
    return json.loads(body)


@pytest.mark.parametrize("target", ["local", "aws"])
def test_cdk_nag_aws_solutions_pass(stacks, target):
    stack, _ = stacks[target]
    errors = Annotations.from_stack(stack).find_error("*", Match.string_like_regexp("AwsSolutions-.*"))
    assert errors == [], [e.entry.data for e in errors]


def test_buckets_are_encrypted_private_tls_only_and_data_and_batch_are_versioned(stacks):
    _, template = stacks["local"]
    buckets = template.find_resources("AWS::S3::Bucket")
    assert len(buckets) == 4  # data, artifacts, batch, access logs
    algorithms = []
    for bucket in buckets.values():
        props = bucket["Properties"]
        algorithms.append(
            props["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"][
                "SSEAlgorithm"
            ]
        )
        assert props["PublicAccessBlockConfiguration"] == {
            "BlockPublicAcls": True,
            "BlockPublicPolicy": True,
            "IgnorePublicAcls": True,
            "RestrictPublicBuckets": True,
        }
    # customer keys for the three buckets of patient data (test_auth_stack.py checks which); S3's for access logs
    assert sorted(algorithms) == ["AES256", "aws:kms", "aws:kms", "aws:kms"]
    versioned = {
        b["Properties"]["LoggingConfiguration"]["LogFilePrefix"]: b["Properties"]["VersioningConfiguration"]
        for b in buckets.values()
        if "VersioningConfiguration" in b["Properties"]
    }
    assert versioned == {"data/": {"Status": "Enabled"}, "batch/": {"Status": "Enabled"}}
    policies = template.find_resources("AWS::S3::BucketPolicy")
    assert len(policies) == 4
    for policy in policies.values():
        statements = policy["Properties"]["PolicyDocument"]["Statement"]
        assert any(
            s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}} for s in statements
        )


def _statements(template: Template) -> list[dict]:
    out = []
    for policy in template.find_resources("AWS::IAM::Policy").values():
        out += policy["Properties"]["PolicyDocument"]["Statement"]
    return out


@pytest.mark.parametrize("target", ["local", "aws"])
def test_no_wildcard_actions_on_buckets(stacks, target):
    _, template = stacks[target]
    for statement in _statements(template):
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        assert "*" not in actions and "s3:*" not in actions, statement
        assert not any(a.startswith("s3:") and a.endswith("*") for a in actions), statement
        if any(a.startswith("s3:") for a in actions):
            assert statement["Resource"] != "*", statement


def test_only_promote_may_write_the_serving_pointer(stacks):
    _, template = stacks["local"]
    writers = [
        s
        for s in _statements(template)
        if "s3:PutObject" in json.dumps(s) and "serving/champion.json" in json.dumps(s["Resource"])
    ]
    assert len(writers) == 1


def test_every_task_retries_transient_errors_and_catches_to_the_failure_path(stacks):
    _, template = stacks["local"]
    asl = _definition(template)
    tasks = {name: s for name, s in asl["States"].items() if s["Type"] == "Task" and name != "Record failure"}
    assert set(tasks) == {"Validate", "Features", "Evaluate", "Export", "Register", "Promote", "Materialize features"}
    for name, state in [*tasks.items(), ("Train", asl["States"]["Train families"]["ItemProcessor"]["States"]["Train"])]:
        errors = {e for retry in state["Retry"] for e in retry["ErrorEquals"]}
        assert "TransientError" in errors and "Lambda.TooManyRequestsException" in errors, name
        assert all(r["BackoffRate"] > 1 and r["MaxAttempts"] >= 1 for r in state["Retry"]), name
    for name in [*tasks, "Train families"]:
        catch = asl["States"][name]["Catch"][0]
        assert catch["ErrorEquals"] == ["States.ALL"]
        assert asl["States"][catch["Next"]]["Next"] == "Record failure"
    # promotion is the last model step, only on success; then the online features, only if the gate passed
    gate = asl["States"][asl["States"]["Promote"]["Next"]]
    assert gate["Type"] == "Choice" and gate["Default"] == "Done"
    assert gate["Choices"] == [
        {"Variable": "$.promote.promoted", "BooleanEquals": True, "Next": "Materialize features"}
    ]
    assert asl["States"]["Materialize features"]["Next"] == "Done"
    assert asl["States"]["Train families"]["Type"] == "Map" and asl["States"]["Train families"]["MaxConcurrency"] == 3


def test_local_target_uses_zip_functions_and_aws_uses_images_for_training(stacks):
    _, local = stacks["local"]
    _, aws = stacks["aws"]
    local_fns = local.find_resources("AWS::Lambda::Function")
    assert len(local_fns) == 14  # 8 training steps, materialize, new-data trigger, predict, authorizer, batch, bridge
    assert {f["Properties"]["Runtime"] for f in local_fns.values()} == {"python3.13"}
    aws_fns = aws.find_resources("AWS::Lambda::Function")
    packages = {f["Properties"]["Description"]: f["Properties"].get("PackageType") for f in aws_fns.values()}
    assert packages.pop("Diabetes Risk: ONNX prediction API") is None  # predict stays a small zip
    assert packages.pop("Diabetes Risk: score files dropped under inbox/") is None  # so does batch scoring
    bridge = "Diabetes Risk: EMF metrics from CloudWatch Logs to Prometheus (remote write)"
    assert packages.pop(bridge) is None  # and the metrics bridge
    assert packages.pop("Diabetes Risk: API token authorizer (JWT, RS256)") is None  # and the authorizer
    assert set(packages.values()) == {"Image"}
    env = next(iter(local_fns.values()))["Properties"]["Environment"]["Variables"]
    assert {"DR_ARTIFACTS_BUCKET", "MLFLOW_TRACKING_URI"} <= set(env)


def test_schedule_and_new_data_trigger_without_custom_resources(stacks):
    _, template = stacks["local"]
    template.has_resource_properties(
        "AWS::Events::Rule",
        {
            "ScheduleExpression": "cron(0 3 * * ? *)",
            "Targets": Match.array_with([Match.object_like({"Arn": Match.any_value()})]),
        },
    )
    assert template.find_resources("Custom::S3BucketNotifications") == {}
    data = [
        b
        for b in template.find_resources("AWS::S3::Bucket").values()
        if "NotificationConfiguration" in b["Properties"]
        and b["Properties"].get("VersioningConfiguration")
        and b["Properties"]["LoggingConfiguration"]["LogFilePrefix"] == "data/"
    ]
    configs = data[0]["Properties"]["NotificationConfiguration"]["LambdaConfigurations"]
    assert {c["Event"] for c in configs} == {"s3:ObjectCreated:*"}
    prefixes = [c["Filter"]["S3Key"]["Rules"] for c in configs]
    assert prefixes == [
        [{"Name": "prefix", "Value": "data/incoming/"}],
        [{"Name": "prefix", "Value": "features/ingested/"}],
    ]
    template.has_resource_properties("AWS::Lambda::Permission", {"Principal": "s3.amazonaws.com"})


def test_state_machine_logs_and_traces(stacks):
    _, template = stacks["aws"]
    template.has_resource_properties(
        "AWS::StepFunctions::StateMachine",
        {
            "LoggingConfiguration": Match.object_like({"Level": "ALL"}),
            "TracingConfiguration": {"Enabled": True},
        },
    )


def test_cdk_cli_synth_for_aws_needs_no_docker(tmp_path):
    env = {
        **os.environ,
        "JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION": "1",
        "CDK_DISABLE_VERSION_CHECK": "1",
        "PYTHONWARNINGS": "ignore",
        "PATH": f"/nonexistent-docker:{os.environ['PATH']}",
    }
    proc = subprocess.run(
        [str(ROOT / "node_modules" / ".bin" / "cdk"), "synth", "-c", "target=aws", "--quiet", "-o", str(tmp_path)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    template = json.loads((tmp_path / "DiabetesRisk.template.json").read_text())
    assert any(
        r["Type"] == "AWS::Lambda::Function" and r["Properties"].get("PackageType") == "Image"
        for r in template["Resources"].values()
    )


def test_prediction_api_routes_throttling_and_alarms(stacks):
    _, template = stacks["local"]
    paths = {r["Properties"]["PathPart"] for r in template.find_resources("AWS::ApiGateway::Resource").values()}
    assert paths == {"predict", "health", "model", "openapi.json"}
    template.has_resource_properties(
        "AWS::ApiGateway::Stage",
        {
            "StageName": "prod",
            "MethodSettings": Match.array_with(
                [Match.object_like({"ThrottlingRateLimit": 50, "ThrottlingBurstLimit": 100, "DataTraceEnabled": False})]
            ),
            "AccessLogSetting": Match.object_like({"DestinationArn": Match.any_value()}),
        },
    )
    alarms = template.find_resources("AWS::CloudWatch::Alarm")
    metrics = {a["Properties"].get("MetricName"): a["Properties"] for a in alarms.values()}
    assert metrics["5XXError"]["Threshold"] == 1
    assert metrics["Latency"]["ExtendedStatistic"] == "p99" and metrics["Latency"]["Threshold"] == 1000
    assert "Errors" in metrics


def test_api_key_and_usage_plan_on_aws_only(stacks):
    _, local = stacks["local"]
    _, aws = stacks["aws"]
    assert local.find_resources("AWS::ApiGateway::UsagePlan") == {}
    aws.resource_count_is("AWS::ApiGateway::UsagePlan", 1)
    aws.resource_count_is("AWS::ApiGateway::ApiKey", 1)
    keyed = {
        m["Properties"]["HttpMethod"] + " " + str(m["Properties"].get("ApiKeyRequired"))
        for m in aws.find_resources("AWS::ApiGateway::Method").values()
    }
    assert "POST True" in keyed and "GET False" in keyed  # /predict needs a key; /health does not


def test_predict_reads_only_the_pointer_and_models(stacks):
    _, template = stacks["local"]
    (fn_id,) = [
        k
        for k, f in template.find_resources("AWS::Lambda::Function").items()
        if f["Properties"]["Handler"] == "predict.app.handler"
    ]
    role = template.find_resources("AWS::Lambda::Function")[fn_id]["Properties"]["Role"]["Fn::GetAtt"][0]
    policies = [
        p for p in template.find_resources("AWS::IAM::Policy").values() if {"Ref": role} in p["Properties"]["Roles"]
    ]
    actions = {
        a
        for p in policies
        for s in p["Properties"]["PolicyDocument"]["Statement"]
        for a in (s["Action"] if isinstance(s["Action"], list) else [s["Action"]])
    }
    assert actions == {
        "s3:GetObject",
        "s3:ListBucket",
        "logs:CreateLogStream",
        "logs:PutLogEvents",
        "kms:Decrypt",
        # POST /predict {"patient_id"}: reads of the online feature store
        "dynamodb:GetItem",
        "dynamodb:BatchGetItem",
        "dynamodb:DescribeTable",
    }


def _batch_function(template: Template) -> tuple[str, dict]:
    ((logical, fn),) = [
        (k, f)
        for k, f in template.find_resources("AWS::Lambda::Function").items()
        if f["Properties"].get("Handler") == "batch_score.app.handler"
    ]
    return logical, fn["Properties"]


def test_inbox_drop_invokes_batch_score_with_room_to_work(stacks):
    for target in ("local", "aws"):
        _, template = stacks[target]
        logical, props = _batch_function(template)
        assert props["Timeout"] == 900 and props["MemorySize"] >= 3538  # 2 vCPUs
        assert props["EphemeralStorage"] == {"Size": 10240}
        assert props["Environment"]["Variables"]["DR_DRIFT_STARTS_TRAINING"] == "false"
        (bucket,) = [
            b
            for b in template.find_resources("AWS::S3::Bucket").values()
            if b["Properties"].get("LoggingConfiguration", {}).get("LogFilePrefix") == "batch/"
        ]
        (config,) = bucket["Properties"]["NotificationConfiguration"]["LambdaConfigurations"]
        assert config["Filter"]["S3Key"]["Rules"] == [{"Name": "prefix", "Value": "inbox/"}]
        assert config["Function"] == {"Fn::GetAtt": [logical, "Arn"]}
        template.has_resource_properties("AWS::Lambda::EventInvokeConfig", {"MaximumRetryAttempts": 2})


def test_drift_retraining_is_off_unless_asked(tmp_path):
    from infra_cdk.app import build

    _, stack = build({"target": "local", "drift_retrain": "true"})
    _, props = _batch_function(Template.from_stack(stack))
    assert props["Environment"]["Variables"]["DR_DRIFT_STARTS_TRAINING"] == "true"


def test_batch_score_writes_only_outbox_and_quarantine(stacks):
    _, template = stacks["aws"]
    writes = []
    for s in _statements(template):
        actions = s["Action"] if isinstance(s["Action"], list) else [s["Action"]]
        if "s3:PutObject" in actions:
            resources = s["Resource"] if isinstance(s["Resource"], list) else [s["Resource"]]
            writes += [json.dumps(r) for r in resources if "batch" in json.dumps(r)]
    assert writes and all("/outbox/*" in w or "/quarantine/*" in w for w in writes)


@pytest.mark.parametrize("target", ["local", "aws"])
def test_the_deployed_predict_function_reads_its_model_with_the_light_s3_reader(stacks, target):
    _, template = stacks[target]
    (predict,) = [
        f
        for f in template.find_resources("AWS::Lambda::Function").values()
        if f["Properties"].get("Handler") == "predict.app.handler"
    ]
    variables = predict["Properties"]["Environment"]["Variables"]
    assert variables["DR_S3_CLIENT"] == "light"
    assert variables["PYDANTIC_DISABLE_PLUGINS"] == "__all__"  # no entry-point scan at the first model built
