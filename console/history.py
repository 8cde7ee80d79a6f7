"""A Step Functions execution history → what each state did: status, attempts, input/output, error and cause,
Map iterations, and times for the timeline. Pure functions over GetExecutionHistory's events.

Statuses: running, succeeded, failed (the execution failed there), caught (failed, and a Catch moved on),
not_reached. A Map state's iterations are kept apart by index (one per model family)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import datetime

from .graph import Graph, element_id

FAILED_TYPES = (
    "TaskFailed",
    "LambdaFunctionFailed",
    "TaskTimedOut",
    "LambdaFunctionTimedOut",
    "LambdaFunctionStartFailed",
    "LambdaFunctionScheduleFailed",
    "TaskStartFailed",
    "TaskSubmitFailed",
)
SCHEDULED_TYPES = ("TaskScheduled", "LambdaFunctionScheduled")
CONTAINER_END = (
    *("MapStateSucceeded", "MapStateFailed", "MapStateAborted", "MapStateExited"),
    *("ParallelStateSucceeded", "ParallelStateFailed", "ParallelStateAborted", "ParallelStateExited"),
)


@dataclass
class Attempt:
    started: str
    ended: str | None = None
    error: str | None = None
    cause: str | None = None


@dataclass
class StateRun:
    path: str
    name: str
    iteration: int | None = None  # Map iteration index (None outside a Map)
    status: str = "running"
    entered: str | None = None
    exited: str | None = None
    input: str | None = None
    output: str | None = None
    error: str | None = None
    cause: str | None = None
    attempts: list[Attempt] = field(default_factory=list)

    @property
    def retries(self) -> int:
        return max(0, len(self.attempts) - 1)

    def seconds(self, now: datetime) -> float | None:
        if not self.entered:
            return None
        end = datetime.fromisoformat(self.exited) if self.exited else now
        return round((end - datetime.fromisoformat(self.entered)).total_seconds(), 3)


def _ts(event: dict) -> str:
    value = event["timestamp"]
    return value.isoformat() if isinstance(value, datetime) else str(value)


def _details(event: dict) -> dict:
    for key, value in event.items():
        if key.endswith("EventDetails") and isinstance(value, dict):
            return value
    return {}


def _cause_text(cause: str | None) -> str | None:
    """Lambda errors arrive as a JSON document; keep its message readable, the rest as it is."""
    if not cause:
        return cause
    try:
        doc = json.loads(cause)
    except (TypeError, ValueError):
        return cause
    if isinstance(doc, dict) and "errorMessage" in doc:
        return f"{doc.get('errorType', '')}: {doc['errorMessage']}".strip(": ")
    return cause


@dataclass
class ExecutionView:
    status: str  # RUNNING | SUCCEEDED | FAILED | TIMED_OUT | ABORTED
    runs: list[StateRun]
    states: dict[str, dict]  # element id → {path, status, retries, iterations}
    error: str | None = None
    cause: str | None = None
    failed_state: str | None = None
    events: int = 0

    def to_json(self, now: datetime) -> dict:
        runs = []
        for run in self.runs:
            item = asdict(run)
            item["retries"] = run.retries
            item["seconds"] = run.seconds(now)
            item["element"] = element_id(run.path)
            runs.append(item)
        return {
            "status": self.status,
            "error": self.error,
            "cause": self.cause,
            "failed_state": self.failed_state,
            "events": self.events,
            "states": self.states,
            "runs": runs,
        }


def _path_index(graph: Graph) -> dict[tuple[str | None, str], str]:
    """(enclosing Map/Parallel path, state name) → path; state names are unique within one level."""
    return {(node.parent, node.name): node.path for node in graph.nodes.values()}


def analyse(events: list[dict], graph: Graph) -> ExecutionView:
    """Fold the events (in id order) into one StateRun per state entry."""
    paths = _path_index(graph)
    runs: list[StateRun] = []
    open_runs: dict[int, StateRun] = {}  # the StateEntered event id → its run
    status, error, cause = "RUNNING", None, None
    # context of each event: (enclosing Map/Parallel path, Map iteration index, that Map/Parallel's StateEntered
    # event id) — the id, not the path, ties an iteration to its own Map (nested or concurrent ones included)
    Context = tuple[str | None, int | None, int | None]
    context: dict[int, Context] = {}
    top: Context = (None, None, None)

    def ctx_of(event: dict) -> Context:
        prev = event.get("previousEventId")
        return context.get(prev, top) if prev else top

    def is_container(entered: int | None) -> bool:
        run = open_runs.get(entered) if entered is not None else None
        node = graph.nodes.get(run.path) if run else None
        return bool(node and node.type in ("Map", "Parallel"))

    current_entry: dict[int, int] = {}  # event id → StateEntered id of the state it belongs to

    for event in sorted(events, key=lambda e: e["id"]):
        kind = event["type"]
        details = _details(event)
        parent_ctx = ctx_of(event)
        context[event["id"]] = parent_ctx
        prev = event.get("previousEventId")
        owner = current_entry.get(prev) if prev else None
        if kind.endswith("StateEntered"):
            enclosing, iteration, _ = parent_ctx
            name = details.get("name", "")
            path = paths.get((enclosing, name)) or paths.get((None, name)) or name
            run = StateRun(path=path, name=name, iteration=iteration, entered=_ts(event), input=details.get("input"))
            runs.append(run)
            open_runs[event["id"]] = run
            current_entry[event["id"]] = event["id"]
            continue
        if kind in CONTAINER_END and not is_container(owner) and parent_ctx[2] is not None:
            # a Map's/Parallel's end may point at the last event of an iteration or branch: it belongs to the
            # Map/Parallel itself, in that state's own context
            owner = parent_ctx[2]
            context[event["id"]] = context[owner]
        if owner is not None:
            current_entry[event["id"]] = owner
        run = open_runs.get(owner) if owner is not None else None
        if kind == "MapIterationStarted":
            context[event["id"]] = (run.path if run else None, details.get("index"), owner)
            current_entry.pop(event["id"], None)  # the iteration's events belong to its inner states
            continue
        if kind in ("MapIterationSucceeded", "MapIterationFailed", "MapIterationAborted"):
            # back outside the iteration: what follows belongs to the Map state itself, in the Map's own context
            entered = parent_ctx[2]
            if entered is not None:
                context[event["id"]] = context[entered]
                current_entry[event["id"]] = entered
            continue
        if kind == "ParallelStateStarted" and run:
            context[event["id"]] = (run.path, parent_ctx[1], owner)
            current_entry.pop(event["id"], None)
            continue
        if kind in SCHEDULED_TYPES and run:
            run.attempts.append(Attempt(started=_ts(event)))
            run.status, run.error, run.cause = "running", None, None  # a retry: the earlier failure stays in attempts
        elif kind in FAILED_TYPES and run:
            if not run.attempts:
                run.attempts.append(Attempt(started=_ts(event)))
            attempt = run.attempts[-1]
            attempt.ended, attempt.error = _ts(event), details.get("error")
            attempt.cause = _cause_text(details.get("cause"))
            run.error, run.cause, run.status = attempt.error, attempt.cause, "failed"
        elif kind in ("TaskSucceeded", "LambdaFunctionSucceeded") and run and run.attempts:
            run.attempts[-1].ended = _ts(event)
        elif kind in ("MapStateFailed", "ParallelStateFailed") and run:
            run.status = "failed"
            run.error, run.cause = details.get("error"), _cause_text(details.get("cause"))
        elif kind.endswith("StateExited") and run:
            run.exited, run.output = _ts(event), details.get("output")
            if run.status != "failed":
                run.status = "succeeded"
            open_runs.pop(owner, None)
        elif kind in ("ExecutionSucceeded",):
            status = "SUCCEEDED"
        elif kind in ("ExecutionFailed", "ExecutionTimedOut", "ExecutionAborted"):
            status = {"ExecutionFailed": "FAILED", "ExecutionTimedOut": "TIMED_OUT", "ExecutionAborted": "ABORTED"}[
                kind
            ]
            error, cause = details.get("error"), _cause_text(details.get("cause"))

    # A failed state whose Catch target ran next (same Map iteration) was caught; a failure nobody caught is where
    # the execution (or the Map iteration) failed. An entered Fail state fails the execution by design.
    catch_targets: dict[str, set[str]] = {}
    for edge in graph.edges:
        if edge.kind == "catch":
            catch_targets.setdefault(edge.source, set()).add(edge.target)
    failed_state = None
    for i, run in enumerate(runs):
        if run.status != "failed":
            continue
        targets = catch_targets.get(run.path, set())
        if any(r.path in targets and r.iteration == run.iteration for r in runs[i + 1 :]):
            run.status = "caught"
        elif status == "FAILED" and failed_state is None and run.iteration is None:
            failed_state = run.path
    for run in runs:
        node = graph.nodes.get(run.path)
        if node and node.type == "Fail":
            run.status = "failed" if status == "FAILED" else run.status
            run.exited = run.exited or run.entered
    if status == "FAILED":
        # a failure with no state-failure event (States.Runtime from a bad path, say): where it stood is where it failed
        for run in runs:
            if run.status == "running":
                run.status, run.exited = "failed", run.exited or run.entered
        if failed_state is None:
            failed_state = next((r.path for r in reversed(runs) if r.status == "failed"), None)
    if status in ("ABORTED", "TIMED_OUT"):
        for run in runs:
            if run.status == "running":
                run.status = "failed" if status == "TIMED_OUT" else "aborted"

    states: dict[str, dict] = {}
    for path in graph.nodes:
        mine = [r for r in runs if r.path == path]
        states[element_id(path)] = {
            "path": path,
            "status": _summary(mine),
            "retries": sum(r.retries for r in mine),
            "iterations": len([r for r in mine if r.iteration is not None]),
        }
    return ExecutionView(status, runs, states, error, cause, failed_state, len(events))


ORDER = ("failed", "running", "caught", "aborted", "succeeded")


def _summary(runs: list[StateRun]) -> str:
    """One colour for a state that ran several times (Map iterations, loops): the most telling status."""
    if not runs:
        return "not_reached"
    statuses = {r.status for r in runs}
    return next(s for s in ORDER if s in statuses)
