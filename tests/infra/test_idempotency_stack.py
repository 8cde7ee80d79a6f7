"""Idempotency and failure handling in the CDK app: the DynamoDB table, the dead-letter queues of the
asynchronous (S3-invoked) functions with their alarms, and the fault-injection switch per target."""

from __future__ import annotations

import pytest
from aws_cdk.assertions import Match, Template


def _logical(stack, construct) -> str:
    return stack.get_logical_id(construct.node.default_child)


@pytest.mark.parametrize("target", ["local", "aws"])
def test_the_idempotency_table_expires_records_and_only_the_batch_function_uses_it(stacks, target):
    stack, template = stacks[target]
    ((table_id, table),) = [
        (k, t)
        for k, t in template.find_resources("AWS::DynamoDB::Table").items()
        if t["Properties"]["KeySchema"][0]["AttributeName"] == "id"  # not the online feature store's table
    ]
    props = table["Properties"]
    assert props["KeySchema"] == [{"AttributeName": "id", "KeyType": "HASH"}]
    assert props["TimeToLiveSpecification"] == {"AttributeName": "expiration", "Enabled": True}
    assert props["BillingMode"] == "PAY_PER_REQUEST"
    assert props["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is (target == "aws")
    env = template.to_json()["Resources"][_logical(stack, stack.batch.function)]["Properties"]["Environment"]
    assert env["Variables"]["DR_IDEMPOTENCY_TABLE"] == {"Ref": table_id}
    users = [
        p
        for p in template.find_resources("AWS::IAM::Policy").values()
        for st in p["Properties"]["PolicyDocument"]["Statement"]
        if table_id in str(st.get("Resource"))
    ]
    assert len(users) == 1  # the batch function's role, nobody else
    (statement,) = [
        st for st in users[0]["Properties"]["PolicyDocument"]["Statement"] if table_id in str(st.get("Resource"))
    ]
    assert sorted(statement["Action"]) == [
        "dynamodb:DeleteItem",
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
    ]


@pytest.mark.parametrize("target", ["local", "aws"])
def test_s3_invoked_functions_send_what_they_give_up_on_to_a_watched_dead_letter_queue(stacks, target):
    stack, template = stacks[target]
    queues = template.find_resources("AWS::SQS::Queue")
    assert len(queues) == 3
    for queue in queues.values():
        assert queue["Properties"]["MessageRetentionPeriod"] == 14 * 24 * 3600
        assert queue["Properties"]["SqsManagedSseEnabled"] is True
    configs = template.find_resources("AWS::Lambda::EventInvokeConfig")
    targets = {}
    for config in configs.values():
        props = config["Properties"]
        assert props["MaximumRetryAttempts"] == 2
        destination = props["DestinationConfig"]["OnFailure"]["Destination"]["Fn::GetAtt"][0]
        targets[props["FunctionName"]["Ref"]] = destination
    batch, start = _logical(stack, stack.batch.function), _logical(stack, stack.training.start_function)
    materialize = _logical(stack, stack.training.materialize_function)
    assert set(targets) == {batch, start, materialize} and len(set(targets.values())) == 3
    assert set(targets.values()) == set(queues)
    for queue_id in queues:
        template.has_resource_properties(
            "AWS::CloudWatch::Alarm",
            {
                "MetricName": "ApproximateNumberOfMessagesVisible",
                "Dimensions": [{"Name": "QueueName", "Value": {"Fn::GetAtt": [queue_id, "QueueName"]}}],
                "AlarmActions": Match.any_value(),
            },
        )


@pytest.mark.parametrize(
    ("context", "allowed"),
    [
        ({"target": "local"}, "true"),
        ({"target": "aws"}, "false"),
        ({"target": "aws", "fault_injection": "true"}, "true"),
        ({"target": "local", "fault_injection": "false"}, "false"),
    ],
)
def test_fault_injection_is_on_for_the_local_target_and_off_on_aws_unless_asked(context, allowed):
    from infra_cdk.app import build

    _, stack = build(context)
    template = Template.from_stack(stack)
    env = template.to_json()["Resources"][_logical(stack, stack.training.functions["Validate"])]["Properties"]
    assert env["Environment"]["Variables"]["DR_ALLOW_FAULT_INJECTION"] == allowed


@pytest.mark.parametrize(("target", "preload"), [("local", "true"), ("aws", None)])
def test_training_steps_import_their_libraries_at_init_only_on_the_local_target(target, preload):
    """Locally each environment starts at deploy, so init is free; on AWS an on-demand init is limited to 10 s."""
    from infra_cdk.app import build

    _, stack = build({"target": target})
    resources = Template.from_stack(stack).to_json()["Resources"]
    for name, function in stack.training.functions.items():
        variables = resources[_logical(stack, function)]["Properties"]["Environment"]["Variables"]
        assert variables.get("DR_PRELOAD_AT_INIT") == preload, name
        # every core for a family's search where the host runs joblib's processes; AWS keeps the default (one)
        assert variables.get("DR_SEARCH_JOBS") == ("0" if preload else None), name
