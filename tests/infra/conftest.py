"""The CDK app synthesized once per session for both targets (stack, template), shared by the infra tests."""

from __future__ import annotations

import pytest
from aws_cdk.assertions import Template


@pytest.fixture(scope="session")
def stacks():
    from infra_cdk.app import build

    out = {}
    for target in ("local", "aws"):
        _, stack = build({"target": target})
        out[target] = (stack, Template.from_stack(stack))
    return out
