"""The monitoring part of the CDK app: the bridge, its subscriptions, the alarm topic, AMP on AWS."""

from __future__ import annotations

import pytest
import yaml
from aws_cdk.assertions import Match, Template


@pytest.fixture(scope="module")
def stacks():
    from infra_cdk.app import build

    out = {}
    for target, extra in (("local", {"remote_write_url": "http://127.0.0.1:19090/api/v1/write"}), ("aws", {})):
        _, stack = build({"target": target, **extra, "alarm_email": "oncall@example.org"})
        out[target] = (stack, Template.from_stack(stack))
    return out


def _ref(value) -> str:
    """The logical id a Ref / GetAtt points at."""
    if "Ref" in value:
        return value["Ref"]
    return value["Fn::GetAtt"][0]


def _function_log_groups(template: Template) -> dict[str, str]:
    """function logical id → its log group's logical id (LoggingConfig)."""
    out = {}
    for fid, fn in template.find_resources("AWS::Lambda::Function").items():
        group = fn["Properties"].get("LoggingConfig", {}).get("LogGroup")
        if group:
            out[fid] = _ref(group)
    return out


@pytest.mark.parametrize("target", ["local", "aws"])
def test_every_emitting_function_is_subscribed_and_the_bridge_never_to_itself(stacks, target):
    stack, template = stacks[target]
    groups = _function_log_groups(template)
    bridge_id = stack.get_logical_id(stack.monitoring.function.node.default_child)
    subscribed = {}
    for sub in template.find_resources("AWS::Logs::SubscriptionFilter").values():
        props = sub["Properties"]
        subscribed[_ref(props["LogGroupName"])] = _ref(props["DestinationArn"])
        assert props["FilterPattern"] == "{ $._aws.Timestamp > 0 }"
    emitting = {fid: group for fid, group in groups.items() if fid != bridge_id}
    assert len(emitting) == 13  # predict, authorizer, batch-score, 8 training steps, materialize, start-on-new-data
    assert set(subscribed) == set(emitting.values())
    assert set(subscribed.values()) == {bridge_id}
    assert groups[bridge_id] not in subscribed


def test_local_bridge_writes_to_the_local_prometheus_without_signing(stacks):
    stack, template = stacks["local"]
    bridge_id = stack.get_logical_id(stack.monitoring.function.node.default_child)
    env = template.to_json()["Resources"][bridge_id]["Properties"]["Environment"]["Variables"]
    assert env["DR_REMOTE_WRITE_URL"] == "http://127.0.0.1:19090/api/v1/write"
    assert "DR_REMOTE_WRITE_SIGV4_REGION" not in env
    template.resource_count_is("AWS::APS::Workspace", 0)


def test_aws_bridge_signs_for_its_managed_prometheus_workspace_with_the_projects_rules(stacks):
    stack, template = stacks["aws"]
    template.resource_count_is("AWS::APS::Workspace", 1)
    (workspace_id,) = template.find_resources("AWS::APS::Workspace")
    bridge_id = stack.get_logical_id(stack.monitoring.function.node.default_child)
    env = template.to_json()["Resources"][bridge_id]["Properties"]["Environment"]["Variables"]
    assert env["DR_REMOTE_WRITE_SIGV4_REGION"]
    assert env["DR_REMOTE_WRITE_URL"]["Fn::Join"][1][0] == {"Fn::GetAtt": [workspace_id, "PrometheusEndpoint"]}
    template.has_resource_properties(
        "AWS::IAM::Policy",
        {
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [
                        Match.object_like(
                            {"Action": "aps:RemoteWrite", "Resource": {"Fn::GetAtt": [workspace_id, "Arn"]}}
                        )
                    ]
                )
            }
        },
    )
    (rules,) = template.find_resources("AWS::APS::RuleGroupsNamespace").values()
    alerts = {r["alert"] for g in yaml.safe_load(rules["Properties"]["Data"])["groups"] for r in g["rules"]}
    assert {
        "PredictionApi5xxRateHigh",
        "BatchDriftDetected",
        "TrainingRunFailed",
        "MetricsBridgeDroppingSamples",
    } <= alerts
    (ws,) = template.find_resources("AWS::APS::Workspace").values()
    parts = ws["Properties"]["AlertManagerDefinition"]["Fn::Join"][1]
    definition = yaml.safe_load("".join(p if isinstance(p, str) else "TOKEN" for p in parts))
    config = yaml.safe_load(definition["alertmanager_config"])
    (receiver,) = config["receivers"]
    assert config["route"]["receiver"] == receiver["name"]
    assert receiver["sns_configs"] == [{"topic_arn": "TOKEN", "sigv4": {"region": "TOKEN"}}]
    # the workspace may publish to the topic, and only this workspace
    template.has_resource_properties(
        "AWS::SNS::TopicPolicy",
        {
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [
                        Match.object_like(
                            {
                                "Principal": {"Service": "aps.amazonaws.com"},
                                "Action": ["sns:Publish", "sns:GetTopicAttributes"],
                                "Condition": {"ArnEquals": {"aws:SourceArn": {"Fn::GetAtt": [workspace_id, "Arn"]}}},
                            }
                        )
                    ]
                )
            }
        },
    )


@pytest.mark.parametrize("target", ["local", "aws"])
def test_every_alarm_notifies_the_topic_and_the_email_is_subscribed(stacks, target):
    _, template = stacks[target]
    (topic_id,) = template.find_resources("AWS::SNS::Topic")
    alarms = template.find_resources("AWS::CloudWatch::Alarm")
    assert len(alarms) >= 7
    for alarm in alarms.values():
        assert alarm["Properties"]["AlarmActions"] == [{"Ref": topic_id}]
    template.has_resource_properties("AWS::SNS::Subscription", {"Protocol": "email", "Endpoint": "oncall@example.org"})
    template.has_resource_properties(
        "AWS::CloudWatch::Alarm", {"MetricName": "BridgeSamplesDropped", "Namespace": "DiabetesRisk"}
    )


def test_a_bad_alarm_email_is_refused():
    from infra_cdk.app import build

    with pytest.raises(Exception, match="alarm_email"):
        build({"target": "local", "alarm_email": "not-an-address"})
