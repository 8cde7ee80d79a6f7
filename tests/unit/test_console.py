"""The console without a browser or a cloud: ASL → graph, recorded histories → per-state status, the ASL linted,
the package's dependency rule, and the app's routes and error paths on a stand-in for its AWS/MLflow sources."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from console.app import create_app
from console.graph import build_graph, element_id, to_dot
from console.history import analyse
from console.settings import ConsoleSettings
from console.sources import NotDeployed, Unavailable

ROOT = Path(__file__).resolve().parents[2]
ASL = json.loads((ROOT / "statemachines" / "training.asl.json").read_text())
EVENTS = ROOT / "tests" / "events"


def all_states(states: dict, prefix: str = "") -> set[str]:
    found = set()
    for name, state in states.items():
        found.add(prefix + name)
        inner = state.get("ItemProcessor") or state.get("Iterator")
        if inner:
            found |= all_states(inner["States"], f"{prefix}{name}/")
        for i, branch in enumerate(state.get("Branches", [])):
            found |= all_states(branch["States"], f"{prefix}{name}/{i}/")
    return found


# --- ASL → graph ------------------------------------------------------------------------------------------------
def test_every_state_of_the_training_definition_is_a_node():
    graph = build_graph(ASL)
    assert set(graph.nodes) == all_states(ASL["States"])
    assert graph.start == ASL["StartAt"]
    assert graph.nodes["Train families/Train"].parent == "Train families"
    assert graph.nodes["Train families"].type == "Map"


def test_catch_and_retry_edges_follow_the_definition():
    graph = build_graph(ASL)
    catches = {(e.source, e.target) for e in graph.edges if e.kind == "catch"}
    expected = {(n, c["Next"]) for n, s in ASL["States"].items() for c in s.get("Catch", [])}
    assert catches == expected and len(expected) == 8
    retried = {e.source for e in graph.edges if e.kind == "retry"}
    assert "Train families/Train" in retried and "Validate" in retried
    assert "Init" not in retried
    assert ("Train families", "Train families/Train") in {
        (e.source, e.target) for e in graph.edges if e.kind == "start"
    }


def test_parallel_branches_and_choices_nest_and_label():
    definition = {
        "StartAt": "Fan",
        "States": {
            "Fan": {
                "Type": "Parallel",
                "Branches": [
                    {"StartAt": "A", "States": {"A": {"Type": "Pass", "End": True}}},
                    {"StartAt": "A", "States": {"A": {"Type": "Pass", "End": True}}},
                ],
                "Next": "Pick",
            },
            "Pick": {
                "Type": "Choice",
                "Choices": [{"Variable": "$.x", "NumericGreaterThan": 1, "Next": "Done"}],
                "Default": "Done",
            },
            "Done": {"Type": "Succeed"},
        },
    }
    graph = build_graph(definition)
    assert {"Fan/0/A", "Fan/1/A"} <= set(graph.nodes)
    assert graph.nodes["Fan/1/A"].parent == "Fan" and graph.nodes["Fan/1/A"].branch == 1
    kinds = {(e.source, e.target, e.kind) for e in graph.edges}
    assert ("Pick", "Done", "choice") in kinds and ("Pick", "Done", "default") in kinds
    assert ("Fan", "Fan/0/A", "start") in kinds


def test_dot_has_a_cluster_per_map_and_an_id_per_state_and_escapes_names():
    dot = to_dot(build_graph(ASL))
    assert dot.count("subgraph ") == 1
    for path in all_states(ASL["States"]):
        assert f'id="{element_id(path)}"' in dot
    odd = {"StartAt": 'Say "hi"\\', "States": {'Say "hi"\\': {"Type": "Pass", "End": True}}}
    odd_dot = to_dot(build_graph(odd))
    assert '"Say \\"hi\\"\\\\"' in odd_dot  # quotes and backslashes escaped for Graphviz
    assert len({element_id(p) for p in all_states(ASL["States"])}) == len(all_states(ASL["States"]))


def test_the_definition_passes_statelint_and_the_lint_catches_a_broken_one():
    from statelint.linter import Linter

    def deployed(definition: dict) -> dict:  # CDK substitutes the ${...} function ARNs at deploy time
        text = re.sub(r"\$\{\w+\}", "arn:aws:lambda:us-east-1:000000000000:function:step", json.dumps(definition))
        return json.loads(text)

    assert Linter.validate(deployed(ASL)) == []
    broken = deployed(ASL) | {"StartAt": "Nowhere"}
    assert any("Nowhere" in problem for problem in Linter.validate(broken))


# --- history → per-state status --------------------------------------------------------------------------------
def recorded(name: str) -> list[dict]:
    """A history recorded from the local cloud (GetExecutionHistory), timestamps as datetimes again."""
    events = json.loads((EVENTS / name).read_text())["events"]
    for event in events:
        event["timestamp"] = datetime.fromisoformat(event["timestamp"])
    return events


def statuses(view) -> dict[str, tuple[str, int, int]]:
    return {s["path"]: (s["status"], s["retries"], s["iterations"]) for s in view.states.values()}


def test_retry_inside_one_map_iteration_then_success():
    view = analyse(recorded("history_retry_in_map.json"), build_graph(ASL))
    got = statuses(view)
    assert view.status == "SUCCEEDED" and view.failed_state is None
    assert got["Train families/Train"] == ("succeeded", 1, 3)  # three families, one retried once
    assert got["Train families"] == ("succeeded", 0, 0)
    assert got["Evaluate"] == ("succeeded", 0, 0)  # after the Map: no iteration leaks into later states
    assert got["Validate failed"][0] == "not_reached"
    train = [r for r in view.runs if r.path == "Train families/Train"]
    assert sorted(r.iteration for r in train) == [0, 1, 2]
    retried = next(r for r in train if r.retries)
    assert retried.attempts[0].error == "TransientError" and "injected" in retried.attempts[0].cause


def test_a_caught_task_failure_and_the_failure_path():
    view = analyse(recorded("history_caught_failure.json"), build_graph(ASL))
    got = statuses(view)
    assert view.status == "FAILED"
    assert got["Validate"] == ("caught", 2, 0)  # three attempts, then the Catch
    assert got["Validate failed"][0] == "succeeded" and got["Record failure"][0] == "succeeded"
    assert got["Training failed"][0] == "failed" and got["Features"][0] == "not_reached"
    validate = next(r for r in view.runs if r.path == "Validate")
    assert validate.error == "TransientError" and "always" in validate.cause


def test_a_failed_map_iteration_fails_the_map_which_is_caught():
    view = analyse(recorded("history_map_failure_caught.json"), build_graph(ASL))
    got = statuses(view)
    assert got["Train families"][0] == "caught"
    assert got["Train families/Train"][0] == "failed"
    assert got["Train families failed"][0] == "succeeded"
    assert got["Evaluate"][0] == "not_reached"


def test_a_running_execution_mid_retry_shows_running_not_failed():
    events = recorded("history_retry_in_map.json")
    # cut just after the retry was scheduled (the second LambdaFunctionScheduled of the failed iteration)
    failed = next(e for e in events if e["type"] == "LambdaFunctionFailed")
    retry = next(e for e in events if e.get("previousEventId") == failed["id"])
    view = analyse([e for e in events if e["id"] <= retry["id"]], build_graph(ASL))
    got = statuses(view)
    assert view.status == "RUNNING"
    assert got["Train families"][0] == "running" and got["Train families/Train"][0] == "running"
    assert got["Evaluate"][0] == "not_reached"
    json.dumps(view.to_json(datetime.now(UTC)))  # what the page receives serialises


def test_timeline_seconds_come_from_the_events():
    view = analyse(recorded("history_retry_in_map.json"), build_graph(ASL))
    data = view.to_json(datetime.now(UTC) + timedelta(days=1))
    evaluate = next(r for r in data["runs"] if r["path"] == "Evaluate")
    assert 0 < evaluate["seconds"] < 60  # exited: not measured against "now"
    assert evaluate["element"] == element_id("Evaluate")


# --- dependency rule -------------------------------------------------------------------------------------------
def test_console_imports_no_training_model_or_lambda_code():
    code = "import sys, console.app, console.__main__, console.sources; print('\\n'.join(sorted(sys.modules)))"
    loaded = set(
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    )
    forbidden = {"training", "sklearn", "xgboost", "feast", "mlflow", "onnxruntime", "pandas", "diabetes_risk.cli"}
    forbidden |= {"functions", "inference_core.scoring", "aws_lambda_powertools"}
    assert not {m for m in loaded if m.split(".")[0] in forbidden or m in forbidden}


# --- the app, on stand-in sources ---------------------------------------------------------------------------------
MACHINE = "arn:aws:states:us-east-1:000000000000:stateMachine:DiabetesRisk-training"


class FakeSources:
    """What console.sources.Sources offers, from memory."""

    mlflow_url = "http://127.0.0.1:5000"
    prometheus_url = "http://127.0.0.1:9090"
    state_machine_arn = MACHINE

    def __init__(self, deployed: bool = True) -> None:
        self.deployed = deployed
        self.started: list[dict] = []
        self.uploads: list[tuple[str, bytes]] = []
        self.events = recorded("history_caught_failure.json")

        class Sfn:
            class exceptions:
                class ExecutionDoesNotExist(Exception):
                    pass

        self.sfn = Sfn

    def definition(self, arn=None):
        if not self.deployed:
            raise NotDeployed("the DiabetesRisk stack is not deployed: run `diabetes-risk deploy`")
        return ASL

    def graph(self, arn=None):
        return build_graph(self.definition(arn))

    def executions(self, status=None, limit=50):
        start = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
        items = [
            {"arn": f"{MACHINE}:ok", "name": "ok", "status": "SUCCEEDED", "started": start, "seconds": 30.0},
            {"arn": f"{MACHINE}:bad", "name": "bad", "status": "FAILED", "started": start, "seconds": 7.0},
        ]
        return [i for i in items if status in (None, i["status"])]

    def failure_record(self, name):
        return (
            {"failed_step": "Validate", "message": "TransientError: injected always fault"} if name == "bad" else None
        )

    def default_input(self):
        return {"train_uri": "bundled", "holdout_uri": "bundled", "families": ["xgboost"]}

    def start(self, payload):
        self.started.append(payload)
        return {"arn": f"{MACHINE}:new", "name": "new"}

    def stop(self, arn):
        pass

    def describe(self, arn):
        if not arn.endswith(":bad"):
            raise self.sfn.exceptions.ExecutionDoesNotExist()
        start = self.events[0]["timestamp"]
        return {"status": "FAILED", "startDate": start, "stopDate": start + timedelta(seconds=7)}

    def history(self, arn):
        return self.events

    def run_artifacts(self, name):
        return [{"path": "failure.json", "bytes": 120}]

    def run_artifact(self, name, path):
        if path != "failure.json":
            raise FileNotFoundError(f"no artifact {path!r} for run {name}")
        return b'{"failed_step": "Validate"}'

    def models(self):
        raise Unavailable("MLflow at http://127.0.0.1:5000 did not answer (ConnectionError)")

    def serving(self):
        return {"error": "the API could not be asked: stand-in"}

    def batches(self):
        return []

    def quarantined(self):
        return []

    def upload(self, name, body):
        self.uploads.append((name, body))
        from console.sources import Upload

        return Upload("b", f"inbox/console/{name}", None, f"console/{name}-abc")

    def batch_result(self, name):
        return {"name": name, "kind": "pending"}


def console_client(app) -> TestClient:
    """A client as the console's own pages are: on 127.0.0.1, sending the POST header."""
    return TestClient(app, base_url="http://127.0.0.1:8088", headers={"X-Console-Request": "1"})


@pytest.fixture
def client_and_sources():
    sources = FakeSources()
    return console_client(create_app(ConsoleSettings(), sources)), sources


def test_pages_render_and_list_failed_executions_with_their_cause(client_and_sources):
    client, _ = client_and_sources
    pipeline = client.get("/pipeline")
    assert pipeline.status_code == 200 and "digraph training" in pipeline.text
    listing = client.get("/executions?status=FAILED")
    assert listing.status_code == 200
    assert "Validate: TransientError: injected always fault" in listing.text and ">ok<" not in listing.text
    assert client.get("/healthz").json() == {"status": "ok"}


def test_execution_view_json(client_and_sources):
    client, _ = client_and_sources
    view = client.get("/api/executions/bad").json()
    assert view["status"] == "FAILED" and view["failure"]["failed_step"] == "Validate"
    assert view["states"][element_id("Validate")]["status"] == "caught"
    assert view["history"][0]["type"] == "ExecutionStarted"
    events = client.get("/api/executions/bad/events")
    assert events.headers["content-type"].startswith("text/event-stream")
    first = events.text.split("\n\n")[0]
    assert first.startswith("data: ") and json.loads(first[6:])["status"] == "FAILED"
    assert "event: end" in events.text  # a finished execution's stream ends


@pytest.mark.parametrize(
    ("method", "url", "body", "status", "message"),
    [
        ("get", "/executions/no$such", None, 400, "execution name"),
        ("get", "/executions/missing", None, 404, "no execution 'missing'"),
        ("get", "/api/executions/missing/events", None, 404, "no execution"),
        ("get", "/executions?status=SLEEPING", None, 400, "status must be one of"),
        ("post", "/api/executions", {"input": [1, 2]}, 400, "JSON object"),
        ("post", "/api/executions", {"input": {}, "fault": "teach:always"}, 400, "STEP:once|always"),
        ("post", "/api/batches?filename=x.csv", b"", 400, "empty"),
        ("get", "/api/runs/not-a-run/artifacts/plots/roc.png", None, 400, "bad run id"),
    ],
)
def test_client_mistakes_get_clear_4xx_answers(client_and_sources, method, url, body, status, message):
    client, _ = client_and_sources
    kwargs = {"json": body} if isinstance(body, dict | list) else ({"content": body} if body is not None else {})
    reply = getattr(client, method)(url, **kwargs)
    assert reply.status_code == status
    assert message in reply.text


def test_start_passes_the_input_and_the_fault(client_and_sources):
    client, sources = client_and_sources
    reply = client.post("/api/executions", json={"input": {"families": ["xgboost"]}, "fault": "validate:always"})
    assert reply.status_code == 201 and reply.json()["url"] == "/executions/new"
    assert sources.started == [{"families": ["xgboost"], "fault": {"step": "validate", "mode": "always"}}]
    bad_json = client.post("/api/executions", content=b"{not json", headers={"Content-Type": "application/json"})
    assert bad_json.status_code == 400 and "not JSON" in bad_json.text


def test_upload_names_are_made_safe_and_size_is_limited(client_and_sources):
    client, sources = client_and_sources
    reply = client.post("/api/batches?filename=../../etc/pass wd.csv", content=b"glucose\n1\n")
    assert reply.status_code == 201
    assert sources.uploads == [("pass_wd.csv", b"glucose\n1\n")]
    small = console_client(create_app(ConsoleSettings(max_upload_mb=1), sources))
    assert small.post("/api/batches?filename=big.csv", content=b"x" * (1024 * 1024 + 1)).status_code == 413


def test_a_service_down_or_no_stack_is_a_page_saying_so(client_and_sources):
    client, _ = client_and_sources
    models = client.get("/models")
    assert models.status_code == 503 and "MLflow at http://127.0.0.1:5000 did not answer" in models.text
    empty = console_client(create_app(ConsoleSettings(), FakeSources(deployed=False)))
    page = empty.get("/pipeline")
    assert page.status_code == 409 and "run `diabetes-risk deploy`" in page.text


def test_console_settings_refuse_a_public_host():
    with pytest.raises(ValueError, match="loopback only"):
        ConsoleSettings(host="0.0.0.0")


def test_viz_is_served_by_the_app_itself(client_and_sources):
    client, _ = client_and_sources
    reply = client.get("/vendor/viz-global.js")
    assert reply.status_code == 200 and "Viz.js 3.31" in reply.text[:200]
    page = client.get("/pipeline").text
    # no CDN: every script, stylesheet and image comes from this app (links to MLflow/Prometheus are navigation)
    assert not re.search(r"""src=["']https?://|<link[^>]+href=["']https?://""", page)


# --- synthetic histories in AWS's shape, for what the project's own machine never does ----------------------------
def history(*rows: tuple) -> list[dict]:
    """(type, previousEventId, details) rows → events with ids from 1 and timestamps a second apart."""
    start = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
    events = []
    for i, (kind, prev, details) in enumerate(rows, start=1):
        event = {"id": i, "previousEventId": prev, "type": kind, "timestamp": start + timedelta(seconds=i)}
        if details:
            key = "stateEnteredEventDetails" if kind.endswith("StateEntered") else "stateExitedEventDetails"
            if kind.startswith(("MapIteration",)):
                key = "mapIterationStartedEventDetails"
            elif kind.endswith("Failed"):
                key = "executionFailedEventDetails"
            event[key] = details
        events.append(event)
    return events


PARALLEL = {
    "StartAt": "Fan",
    "States": {
        "Fan": {
            "Type": "Parallel",
            "Branches": [
                {"StartAt": "Left", "States": {"Left": {"Type": "Pass", "End": True}}},
                {"StartAt": "Right", "States": {"Right": {"Type": "Pass", "End": True}}},
            ],
            "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Handled"}],
            "Next": "After",
        },
        "After": {"Type": "Succeed"},
        "Handled": {"Type": "Succeed"},
    },
}


def test_a_parallel_state_finishes_when_its_branches_do():
    events = history(
        ("ExecutionStarted", 0, None),
        ("ParallelStateEntered", 1, {"name": "Fan"}),
        ("ParallelStateStarted", 2, None),
        ("PassStateEntered", 3, {"name": "Left"}),
        ("PassStateEntered", 3, {"name": "Right"}),
        ("PassStateExited", 4, {"name": "Left", "output": "{}"}),
        ("PassStateExited", 5, {"name": "Right", "output": "{}"}),
        ("ParallelStateSucceeded", 7, None),  # AWS points it at the last branch event
        ("ParallelStateExited", 8, {"name": "Fan", "output": "[]"}),
        ("SucceedStateEntered", 9, {"name": "After"}),
        ("SucceedStateExited", 10, {"name": "After"}),
        ("ExecutionSucceeded", 11, None),
    )
    got = statuses(analyse(events, build_graph(PARALLEL)))
    assert got["Fan"][0] == "succeeded"
    assert got["Fan/0/Left"][0] == "succeeded" and got["Fan/1/Right"][0] == "succeeded"
    assert got["After"][0] == "succeeded" and got["Handled"][0] == "not_reached"


def test_a_failed_parallel_branch_is_caught_at_the_parallel():
    events = history(
        ("ExecutionStarted", 0, None),
        ("ParallelStateEntered", 1, {"name": "Fan"}),
        ("ParallelStateStarted", 2, None),
        ("PassStateEntered", 3, {"name": "Left"}),
        ("PassStateExited", 4, {"name": "Left", "output": "{}"}),
        ("ParallelStateFailed", 5, {"error": "Boom", "cause": "right went wrong"}),
        ("ParallelStateExited", 6, {"name": "Fan", "output": "{}"}),
        ("SucceedStateEntered", 7, {"name": "Handled"}),
        ("SucceedStateExited", 8, {"name": "Handled"}),
        ("ExecutionSucceeded", 9, None),
    )
    view = analyse(events, build_graph(PARALLEL))
    got = statuses(view)
    assert got["Fan"][0] == "caught" and got["Handled"][0] == "succeeded" and got["After"][0] == "not_reached"
    fan = next(r for r in view.runs if r.path == "Fan")
    assert fan.error == "Boom" and fan.cause == "right went wrong"


NESTED = {
    "StartAt": "Outer",
    "States": {
        "Outer": {
            "Type": "Map",
            "ItemProcessor": {
                "StartAt": "Inner",
                "States": {
                    "Inner": {
                        "Type": "Map",
                        "ItemProcessor": {"StartAt": "Leaf", "States": {"Leaf": {"Type": "Pass", "End": True}}},
                        "Next": "AfterInner",
                    },
                    "AfterInner": {"Type": "Pass", "End": True},
                },
            },
            "Next": "Done",
        },
        "Done": {"Type": "Succeed"},
    },
}


def test_nested_maps_keep_their_iterations_apart():
    events = history(
        ("ExecutionStarted", 0, None),  # 1
        ("MapStateEntered", 1, {"name": "Outer"}),  # 2
        ("MapStateStarted", 2, None),  # 3
        ("MapIterationStarted", 3, {"name": "Outer", "index": 0}),  # 4
        ("MapIterationStarted", 3, {"name": "Outer", "index": 1}),  # 5
        ("MapStateEntered", 4, {"name": "Inner"}),  # 6: outer iteration 0
        ("MapStateEntered", 5, {"name": "Inner"}),  # 7: outer iteration 1
        ("MapStateStarted", 6, None),  # 8
        ("MapIterationStarted", 8, {"name": "Inner", "index": 0}),  # 9
        ("PassStateEntered", 9, {"name": "Leaf"}),  # 10
        ("PassStateExited", 10, {"name": "Leaf", "output": "{}"}),  # 11
        ("MapIterationSucceeded", 11, {"name": "Inner", "index": 0}),  # 12
        ("MapStateSucceeded", 11, None),  # 13: points into the inner iteration
        ("MapStateExited", 13, {"name": "Inner", "output": "[]"}),  # 14
        ("PassStateEntered", 14, {"name": "AfterInner"}),  # 15: still outer iteration 0
        ("PassStateExited", 15, {"name": "AfterInner", "output": "{}"}),  # 16
        ("MapIterationSucceeded", 16, {"name": "Outer", "index": 0}),  # 17
    )
    view = analyse(events, build_graph(NESTED))
    got = statuses(view)
    after = next(r for r in view.runs if r.path == "Outer/AfterInner")
    assert after.iteration == 0 and after.status == "succeeded"
    inner = [r for r in view.runs if r.path == "Outer/Inner"]
    assert sorted((r.iteration, r.status) for r in inner) == [(0, "succeeded"), (1, "running")]
    assert got["Outer"][0] == "running"  # iteration 1 is still going
    assert got["Outer/Inner/Leaf"][0] == "succeeded"


def test_a_runtime_failure_without_a_state_event_fails_the_state_it_stood_in():
    events = history(
        ("ExecutionStarted", 0, None),
        ("PassStateEntered", 1, {"name": "Init"}),
        ("ExecutionFailed", 2, {"error": "States.Runtime", "cause": "An error occurred while executing the state"}),
    )
    view = analyse(events, build_graph(ASL))
    assert view.status == "FAILED" and view.failed_state == "Init"
    assert statuses(view)["Init"][0] == "failed"
    assert view.error == "States.Runtime"


def test_an_aborted_execution_marks_what_was_running():
    events = history(
        ("ExecutionStarted", 0, None),
        ("TaskStateEntered", 1, {"name": "Validate"}),
        ("LambdaFunctionScheduled", 2, None),
        ("ExecutionAborted", 3, None),
    )
    view = analyse(events, build_graph(ASL))
    assert view.status == "ABORTED" and statuses(view)["Validate"][0] == "aborted"


# --- guards: another site, a foreign host name, AWS errors, a stream that fails ------------------------------------
def test_a_post_without_the_console_header_is_refused(client_and_sources):
    _, sources = client_and_sources
    bare = TestClient(create_app(ConsoleSettings(), sources), base_url="http://127.0.0.1:8088")
    # what a cross-site form or no-CORS fetch can send: a simple content type, no custom header
    for url, body in (("/api/executions", b'{"input": {}}'), ("/api/batches?filename=x.csv", b"a\n1\n")):
        reply = bare.post(url, content=body, headers={"Content-Type": "text/plain", "Origin": "https://evil.example"})
        assert reply.status_code == 403 and "X-Console-Request" in reply.text
    assert bare.post("/api/executions/bad/stop").status_code == 403
    assert sources.started == [] and sources.uploads == []


def test_a_request_naming_another_host_is_refused(client_and_sources):
    _, sources = client_and_sources
    rebound = TestClient(create_app(ConsoleSettings(), sources), base_url="http://evil.example:8088")
    assert rebound.get("/pipeline").status_code == 400
    assert rebound.post("/api/executions", json={"input": {}}, headers={"X-Console-Request": "1"}).status_code == 400
    assert sources.started == []


def test_aws_errors_become_clear_answers_not_500(client_and_sources):
    from botocore.exceptions import ClientError, EndpointConnectionError

    client, sources = client_and_sources
    assert client.post("/api/executions/missing/stop").status_code == 404

    def refuse(payload):
        raise ClientError({"Error": {"Code": "InvalidExecutionInput", "Message": "input too large"}}, "StartExecution")

    sources.start = refuse
    reply = client.post("/api/executions", json={"input": {}})
    assert reply.status_code == 400 and "input too large" in reply.text

    def down(status=None, limit=50):
        raise EndpointConnectionError(endpoint_url="http://127.0.0.1:4566")

    sources.executions = down
    page = client.get("/executions")
    assert page.status_code == 503 and "127.0.0.1:4566" in page.text


def test_a_stream_that_fails_says_so_and_ends(client_and_sources):
    client, sources = client_and_sources
    calls = {"n": 0}

    def flaky(arn):
        calls["n"] += 1
        if calls["n"] > 1:  # the pre-stream check passes, then the cloud goes away
            raise ConnectionError("LocalStack stopped")
        return FakeSources.describe(sources, arn)

    sources.describe = flaky
    reply = client.get("/api/executions/bad/events")
    assert reply.status_code == 200
    assert "event: problem" in reply.text and "LocalStack stopped" in reply.text


def test_history_is_read_whole_once_then_only_what_is_new():
    """A live page polls every 0.5 s: after the first read, only the newest page of events is asked for."""
    from console.sources import Sources

    events = recorded("history_retry_in_map.json")
    calls = []

    class Sfn:
        shown = 40

        def get_execution_history(self, executionArn, maxResults, reverseOrder=False, nextToken=None):
            calls.append((maxResults, reverseOrder, nextToken))
            visible = events[: self.shown]
            ordered = list(reversed(visible)) if reverseOrder else visible
            start = int(nextToken or 0)
            page = ordered[start : start + maxResults]
            more = start + maxResults < len(ordered)
            return {"events": page, **({"nextToken": str(start + maxResults)} if more else {})}

    sources = Sources.__new__(Sources)
    sources.sfn, sources._histories = Sfn(), {}
    assert [e["id"] for e in sources.history("arn")] == list(range(1, 41))
    Sfn.shown = len(events)
    assert [e["id"] for e in sources.history("arn")] == [e["id"] for e in events]
    assert calls[0] == (1000, False, None) and calls[1] == (100, True, None)  # one small newest-first read
    assert len(calls) == 2


def test_run_artifacts_are_listed_and_served_and_paths_checked(client_and_sources):
    client, _ = client_and_sources
    assert client.get("/api/executions/bad/artifacts").json() == [{"path": "failure.json", "bytes": 120}]
    reply = client.get("/api/executions/bad/artifacts/failure.json")
    assert reply.status_code == 200 and reply.headers["content-type"] == "application/json"
    assert client.get("/api/executions/bad/artifacts/missing.json").status_code == 404
    assert client.get("/api/executions/bad/artifacts/a/%2E%2E/b").status_code in (400, 404)
    assert client.get("/api/executions/no$such/artifacts").status_code == 400


def test_a_machine_without_chromium_skips_the_browser_tests_but_ci_fails_them(monkeypatch):
    from tests import browser

    monkeypatch.delenv("DR_CHROMIUM", raising=False)
    monkeypatch.setattr(browser.shutil, "which", lambda name: None)
    assert browser.chromium_path() is None
    action, message = browser.without_browser(None)
    assert action == "skip" and "apt-get install chromium" in message
    assert browser.without_browser("true")[0] == "fail"
    monkeypatch.setattr(browser.shutil, "which", lambda name: f"/usr/bin/{name}" if name == "google-chrome" else None)
    assert browser.chromium_path() == "/usr/bin/google-chrome"  # GitHub's runners have Chrome, not chromium


def test_the_models_page_asks_the_api_with_a_token_and_says_why_when_it_cannot(aws_env):
    """The console's one call to the prediction API: with the local cloud down it explains, never fails."""
    from dr_host_executor.process import free_port

    from console.sources import Sources
    from localcloud.settings import LocalCloudSettings

    sources = Sources(ConsoleSettings(), LocalCloudSettings(instance="console-test", localstack_port=free_port()))
    answer = sources.serving()
    assert answer["error"].startswith("the API could not be asked:")
