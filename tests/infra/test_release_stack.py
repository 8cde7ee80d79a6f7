"""Champion/challenger in the template: CodeDeploy canary releases of the predict code on AWS (none locally),
the promotion setting of the training functions, the pointer refresh, and promote's read-back access."""

from __future__ import annotations

import json

import pytest


def _predict(template) -> tuple[str, dict]:
    (item,) = [
        (k, f)
        for k, f in template.find_resources("AWS::Lambda::Function").items()
        if f["Properties"].get("Handler") == "predict.app.handler"
    ]
    return item


def test_aws_releases_predict_code_by_canary_with_automatic_rollback(stacks):
    _, template = stacks["aws"]
    predict_id, _ = _predict(template)
    (group,) = template.find_resources("AWS::CodeDeploy::DeploymentGroup").values()
    props = group["Properties"]
    assert props["DeploymentConfigName"] == "CodeDeployDefault.LambdaCanary10Percent5Minutes"
    assert props["AutoRollbackConfiguration"]["Enabled"] is True
    assert set(props["AutoRollbackConfiguration"]["Events"]) == {
        "DEPLOYMENT_FAILURE",
        "DEPLOYMENT_STOP_ON_REQUEST",
        "DEPLOYMENT_STOP_ON_ALARM",
    }
    assert props["AlarmConfiguration"]["Enabled"] is True
    alarm_ids = {a["Name"]["Ref"] for a in props["AlarmConfiguration"]["Alarms"]}
    alarms = template.find_resources("AWS::CloudWatch::Alarm")
    watched = {alarms[i]["Properties"].get("MetricName") for i in alarm_ids}
    assert {"5XXError", "Latency", "Errors"} <= watched  # API 5xx, API p99 latency, function errors
    for i in alarm_ids:  # each can fire within the 5-minute bake, or it could never stop a bad release
        props = alarms[i]["Properties"]
        assert props["Period"] * props["EvaluationPeriods"] <= 300, props["AlarmDescription"]
    # the alias CodeDeploy moves, and the API calls that alias, not the function's $LATEST
    (alias_id, alias) = next(iter(template.find_resources("AWS::Lambda::Alias").items()))
    assert alias["Properties"]["Name"] == "live"
    assert "CodeDeployLambdaAliasUpdate" in alias["UpdatePolicy"]
    version_id = alias["Properties"]["FunctionVersion"]["Fn::GetAtt"][0]
    version = template.find_resources("AWS::Lambda::Version")[version_id]
    assert version["Properties"]["FunctionName"] == {"Ref": predict_id}
    methods = [
        m
        for m in template.find_resources("AWS::ApiGateway::Method").values()
        if m["Properties"]["Integration"].get("Type") == "AWS_PROXY"
    ]
    assert methods and all(alias_id in json.dumps(m["Properties"]["Integration"]["Uri"]) for m in methods)


def test_local_has_no_codedeploy_and_the_api_calls_the_function(stacks):
    _, template = stacks["local"]
    assert not template.find_resources("AWS::CodeDeploy::DeploymentGroup")
    assert not template.find_resources("AWS::Lambda::Alias")
    predict_id, _ = _predict(template)
    methods = [
        m
        for m in template.find_resources("AWS::ApiGateway::Method").values()
        if m["Properties"]["Integration"].get("Type") == "AWS_PROXY"
    ]
    assert methods and all(predict_id in json.dumps(m["Properties"]["Integration"]["Uri"]) for m in methods)


@pytest.mark.parametrize(("target", "refresh", "flush"), [("local", "5", "1"), ("aws", "60", "10")])
def test_pointer_refresh_and_promotion_setting_by_target(stacks, target, refresh, flush):
    _, template = stacks[target]
    _, predict = _predict(template)
    assert predict["Properties"]["Environment"]["Variables"]["DR_MODEL_REFRESH_S"] == refresh
    assert predict["Properties"]["Environment"]["Variables"]["DR_SHADOW_FLUSH_S"] == flush
    steps = [
        f
        for f in template.find_resources("AWS::Lambda::Function").values()
        if "DR_ALLOW_FAULT_INJECTION" in json.dumps(f["Properties"].get("Environment", {}))
    ]
    assert steps and {s["Properties"]["Environment"]["Variables"]["DR_PROMOTION"] for s in steps} == {"immediate"}


def test_promotion_is_a_deploy_setting_and_refuses_unknown_modes():
    from pydantic import ValidationError

    from infra_cdk.config import DeployConfig

    assert DeployConfig(promotion="canary").promotion == "canary"
    assert DeployConfig(model_refresh_s="7").refresh_s == 7  # -c model_refresh_s=7 arrives as text
    with pytest.raises(ValidationError, match="promotion"):
        DeployConfig(promotion="sometimes")


def test_promote_reads_back_only_what_it_publishes(stacks):
    _, template = stacks["local"]
    statements = [
        s
        for p in template.find_resources("AWS::IAM::Policy").values()
        for s in p["Properties"]["PolicyDocument"]["Statement"]
        if "serving/champion.json" in json.dumps(s.get("Resource"))
    ]
    readers = [s for s in statements if "s3:GetObject" in json.dumps(s["Action"])]
    writers = [s for s in statements if "s3:PutObject" in json.dumps(s["Action"])]
    assert len(writers) == 1  # promote alone writes the pointer
    assert writers[0] in readers  # and reads it back (the champion to compare, the ETag to write on)
