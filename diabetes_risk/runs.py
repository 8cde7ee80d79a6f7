"""Start a training execution and follow it state by state; list recent executions."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime


@dataclass
class StateEvent:
    kind: str  # "entered" | "succeeded" | "failed" | "retry"
    state: str
    at: datetime
    seconds: float | None = None
    detail: str = ""


@dataclass
class ExecutionOutcome:
    arn: str
    name: str
    status: str
    seconds: float
    state_seconds: dict[str, float] = field(default_factory=dict)
    failed_step: str | None = None
    cause: str | None = None
    output: dict | None = None


def _cause(details: dict) -> str:
    cause = details.get("cause") or ""
    try:
        doc = json.loads(cause)
        return f"{doc.get('errorType', details.get('error', ''))}: {doc.get('errorMessage', cause)}"
    except (ValueError, TypeError):
        return f"{details.get('error', '')}: {cause}".strip(": ")


def execution_history(sfn, execution_arn: str) -> list[dict]:
    """Every event of an execution, oldest first (GetExecutionHistory, all pages)."""
    events, kwargs = [], {"executionArn": execution_arn, "maxResults": 1000}
    while True:
        page = sfn.get_execution_history(**kwargs)
        events += page["events"]
        if not page.get("nextToken"):
            return events
        kwargs["nextToken"] = page["nextToken"]


def follow(
    sfn, execution_arn: str, on_event: Callable[[StateEvent], None], poll_s: float = 1.0, timeout_s: float = 3600
) -> ExecutionOutcome:
    """Poll the execution history, reporting each state as it starts and ends, until the execution ends."""
    seen = 0
    entered: dict[str, list[datetime]] = {}  # a Map runs the same state several times at once
    state_seconds: dict[str, float] = {}
    failures: dict[str, str] = {}
    deadline = time.monotonic() + timeout_s
    while True:
        events = execution_history(sfn, execution_arn)
        for event in events[seen:]:
            kind = event["type"]
            if kind.endswith("StateEntered"):
                name = event["stateEnteredEventDetails"]["name"]
                entered.setdefault(name, []).append(event["timestamp"])
                on_event(StateEvent("entered", name, event["timestamp"]))
            elif kind.endswith("StateExited"):
                name = event["stateExitedEventDetails"]["name"]
                starts = entered.get(name) or [event["timestamp"]]
                start = starts.pop(0)
                if not starts:
                    entered.pop(name, None)
                seconds = (event["timestamp"] - start).total_seconds()
                state_seconds[name] = max(state_seconds.get(name, 0.0), seconds)
                on_event(StateEvent("succeeded", name, event["timestamp"], seconds))
            elif kind in ("LambdaFunctionFailed", "TaskFailed"):
                details = event.get("lambdaFunctionFailedEventDetails") or event.get("taskFailedEventDetails") or {}
                running = [n for n in entered if n not in ("Init",)]
                name = running[-1] if running else "?"
                failures[name] = _cause(details)
                on_event(StateEvent("failed", name, event["timestamp"], detail=failures[name]))
        seen = len(events)
        desc = sfn.describe_execution(executionArn=execution_arn)
        if desc["status"] != "RUNNING":
            break
        if time.monotonic() > deadline:
            raise TimeoutError(f"execution {execution_arn} still running after {timeout_s:.0f} s")
        time.sleep(poll_s)
    outcome = ExecutionOutcome(
        arn=execution_arn,
        name=desc["name"],
        status=desc["status"],
        seconds=((desc.get("stopDate") or desc["startDate"]) - desc["startDate"]).total_seconds(),
        state_seconds=state_seconds,
    )
    if desc.get("output"):
        outcome.output = json.loads(desc["output"])
    return outcome


def failure_record(s3, bucket: str, run_id: str) -> dict | None:
    try:
        return json.loads(s3.get_object(Bucket=bucket, Key=f"runs/{run_id}/failure.json")["Body"].read())
    except s3.exceptions.NoSuchKey:
        return None


def recent(sfn, state_machine_arn: str, limit: int = 10) -> list[dict]:
    executions = sfn.list_executions(stateMachineArn=state_machine_arn, maxResults=limit)["executions"]
    out = []
    for e in executions:
        end = e.get("stopDate")
        out.append(
            {
                "name": e["name"],
                "status": e["status"],
                "started": e["startDate"],
                "seconds": (end - e["startDate"]).total_seconds() if end else None,
            }
        )
    return out
