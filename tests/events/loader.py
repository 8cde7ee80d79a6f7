"""Sample events as JSON files next to this module, loaded by name: `load_event("s3_put_incoming")`."""

from __future__ import annotations

import copy
import json
from functools import cache
from pathlib import Path

EVENTS = Path(__file__).parent


@cache
def _read(name: str) -> dict:
    return json.loads((EVENTS / f"{name}.json").read_text())


def load_event(name: str, **overrides) -> dict:
    """A fresh copy of the event, with top-level keys replaced by `overrides`."""
    event = copy.deepcopy(_read(name))
    event.update(overrides)
    return event


def api_event(
    method: str = "POST",
    path: str = "/predict",
    body: object = None,
    raw_body: str | None = None,
    headers: dict[str, str] | None = None,
) -> dict:
    """An API Gateway REST proxy event (tests/events/apigw_rest.json) for another method, path or body."""
    event = load_event("apigw_rest")
    event["httpMethod"] = event["requestContext"]["httpMethod"] = method
    event["path"] = event["resource"] = event["requestContext"]["resourcePath"] = path
    if raw_body is not None:
        event["body"] = raw_body
    elif body is not None:
        event["body"] = json.dumps(body)
    elif method == "GET":
        event["body"] = None
    if headers is not None:
        event["headers"] = headers
        event["multiValueHeaders"] = {k: [v] for k, v in headers.items()}
    return event


class FakeContext:
    """The Lambda context attributes Powertools reads."""

    def __init__(
        self, function_name: str = "test-function", request_id: str = "lambda-req-1", remaining_ms: int = 60_000
    ) -> None:
        self.remaining_ms = remaining_ms
        self.function_name = function_name
        self.memory_limit_in_mb = 512
        self.invoked_function_arn = f"arn:aws:lambda:us-east-1:000000000000:function:{function_name}"
        self.aws_request_id = request_id

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


def logs_subscription_event(message: dict | None = None, **overrides) -> dict:
    """The Lambda event CloudWatch Logs sends a subscribed function: the decoded message of
    tests/events/logs_subscription.json (or `message`), gzipped and base64-encoded under `awslogs.data`."""
    import base64
    import gzip

    body = message if message is not None else load_event("logs_subscription", **overrides)
    data = gzip.compress(json.dumps(body).encode())
    return {"awslogs": {"data": base64.b64encode(data).decode()}}


def s3_event(bucket: str, key: str, version_id: str | None) -> dict:
    """The ObjectCreated notification S3 sends for one object (version), as a handler receives it."""
    obj = {"key": key, **({"versionId": version_id} if version_id else {})}
    return {
        "Records": [
            {
                "eventSource": "aws:s3",
                "eventName": "ObjectCreated:Put",
                "s3": {"bucket": {"name": bucket}, "object": obj},
            }
        ]
    }
