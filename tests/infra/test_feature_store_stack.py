"""The feature store in the synthesized templates: the DynamoDB online table, who may read and write it, the
materialisation function (a state after a passing gate, and S3's target for batch markers), and the offline
store's prefixes in each role."""

from __future__ import annotations

import json

import pytest

from tests.infra.test_auth_stack import _functions, _role_statements
from tests.infra.test_stack import _definition


def _actions(template, handler: str) -> dict[str, set[str]]:
    """Action -> the resources (as JSON text) it is allowed on, for one function's role."""
    out: dict[str, set[str]] = {}
    for s in _role_statements(template, handler):
        actions = s["Action"] if isinstance(s["Action"], list) else [s["Action"]]
        resources = s["Resource"] if isinstance(s["Resource"], list) else [s["Resource"]]
        for a in actions:
            out.setdefault(a, set()).update(json.dumps(r, sort_keys=True) for r in resources)
    return out


@pytest.mark.parametrize("target", ["local", "aws"])
def test_the_online_table_is_named_for_feast_and_given_to_predict_and_training(stacks, target):
    _, template = stacks[target]
    (online,) = [
        t["Properties"]
        for t in template.find_resources("AWS::DynamoDB::Table").values()
        if t["Properties"]["KeySchema"][0]["AttributeName"] == "entity_id"
    ]
    assert online["TableName"] == "DiabetesRisk.diabetes_risk.patient_measurements"
    assert online["BillingMode"] == "PAY_PER_REQUEST"
    assert online["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is (target == "aws")
    outputs = template.to_json()["Outputs"]
    assert outputs["OnlineFeaturesTable"]["Value"] == {"Ref": next(
        k for k, v in template.find_resources("AWS::DynamoDB::Table").items()
        if v["Properties"]["KeySchema"][0]["AttributeName"] == "entity_id"
    )}  # fmt: skip
    assert outputs["OnlineTableTemplate"]["Value"] == "DiabetesRisk.{project}.{table_name}"


def test_predict_reads_the_online_table_and_cannot_write_it(stacks):
    _, template = stacks["local"]
    fn = _functions(template)["predict.app.handler"]["Properties"]["Environment"]["Variables"]
    assert "DR_ONLINE_TABLE" in fn
    actions = _actions(template, "predict.app.handler")
    assert "dynamodb:GetItem" in actions
    assert not {"dynamodb:PutItem", "dynamodb:BatchWriteItem", "dynamodb:UpdateItem"} & set(actions)


def test_materialize_runs_after_a_passing_gate_and_on_batch_markers(stacks):
    _, template = stacks["local"]
    functions = _functions(template)
    assert "training_steps.handlers.materialize" in functions
    env = functions["training_steps.handlers.materialize"]["Properties"]["Environment"]["Variables"]
    assert env["DR_ONLINE_STORE"] == "dynamodb" and env["DR_ONLINE_TABLE_TEMPLATE"].endswith(".{project}.{table_name}")
    actions = _actions(template, "training_steps.handlers.materialize")
    assert {"dynamodb:BatchWriteItem", "dynamodb:DescribeTable"} <= set(actions)
    assert any("features/measurements/*" in r for r in actions["s3:GetObject"])
    assert any("feast/*" in r for r in actions["s3:PutObject"])

    (machine,) = template.find_resources("AWS::StepFunctions::StateMachine").values()
    definition = json.dumps(machine["Properties"]["DefinitionString"])
    assert "Gate passed?" in definition and "Materialize features" in definition

    configs = [
        c
        for b in template.find_resources("AWS::S3::Bucket").values()
        for c in (b["Properties"].get("NotificationConfiguration") or {}).get("LambdaConfigurations", [])
    ]
    prefixes = {c["Filter"]["S3Key"]["Rules"][0]["Value"] for c in configs}
    assert {"data/incoming/", "features/ingested/", "inbox/"} <= prefixes  # two on the data bucket, kept apart


def test_batch_may_add_measurements_and_markers_but_not_read_or_delete_data(stacks):
    _, template = stacks["local"]
    actions = _actions(template, "batch_score.app.handler")
    data_puts = [r for r in actions["s3:PutObject"] if "diabetes-risk-data" in r]
    assert len(data_puts) == 2 and all("features/measurements/*" in r or "features/ingested/*" in r for r in data_puts)
    reads = [r for r in actions["s3:GetObject"] if "diabetes-risk-data" in r]
    assert len(reads) == 1 and "features/ingested/*" in reads[0]  # its own markers, never the measurements
    assert not any("diabetes-risk-data" in r for r in actions.get("s3:DeleteObject", set()))
    env = _functions(template)["batch_score.app.handler"]["Properties"]["Environment"]["Variables"]
    assert "DR_DATA_BUCKET" in env


def test_on_aws_one_materialisation_runs_at_a_time_and_the_state_waits_out_throttling(stacks):
    stack, aws = stacks["aws"]
    fn = aws.to_json()["Resources"][stack.get_logical_id(stack.training.materialize_function.node.default_child)]
    assert fn["Properties"]["ReservedConcurrentExecutions"] == 1
    _, local = stacks["local"]
    definition = _definition(local)
    throttled = next(
        r
        for r in definition["States"]["Materialize features"]["Retry"]
        if r["ErrorEquals"] == ["Lambda.TooManyRequestsException"]
    )
    waited = sum(throttled["IntervalSeconds"] * throttled["BackoffRate"] ** i for i in range(throttled["MaxAttempts"]))
    assert waited > 300  # longer than a materialisation (the function's timeout is 300 s)
