"""The host executor's environment bound (first come, first served) and its coalesced AWS/Lambda metrics."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from dr_host_executor.environments import EnvironmentLimit, FairSlots, limit_from_env
from dr_host_executor.lambda_metrics import MAX_DATUMS, InvocationMetrics


def test_limit_from_env_defaults_to_the_cores_and_refuses_nonsense(monkeypatch):
    monkeypatch.setattr("os.process_cpu_count", lambda: 8)
    assert limit_from_env({}) == 8
    monkeypatch.setattr("os.process_cpu_count", lambda: 1)
    assert limit_from_env({}) == 2  # at least two: one slow request never blocks all
    assert limit_from_env({"DR_LAMBDA_MAX_ENVIRONMENTS": "0"}) == 0
    assert limit_from_env({"DR_LAMBDA_MAX_ENVIRONMENTS": " 3 "}) == 3
    with pytest.raises(ValueError, match="whole number"):
        limit_from_env({"DR_LAMBDA_MAX_ENVIRONMENTS": "two"})
    with pytest.raises(ValueError, match="0 \\(unbounded\\) or more"):
        limit_from_env({"DR_LAMBDA_MAX_ENVIRONMENTS": "-1"})


def _hold(limit: EnvironmentLimit, key: str, running: list, peak: list, release: threading.Event) -> None:
    with limit.slot(key, timeout_s=10):
        running.append(1)
        peak.append(len(running))
        release.wait(10)
        running.pop()


def test_no_more_than_the_limit_run_at_once_per_function():
    limit = EnvironmentLimit(2)
    running: list = []
    peak: list = []
    release = threading.Event()
    threads = [threading.Thread(target=_hold, args=(limit, "fn-a", running, peak, release)) for _ in range(5)]
    for t in threads:
        t.start()
    try:
        deadline = time.monotonic() + 5
        while limit.waiting("fn-a") < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(running) == 2 and limit.waiting("fn-a") == 3  # three wait for the two that run
        with limit.slot("fn-b", timeout_s=0.1):  # another function has its own slots
            pass
    finally:
        release.set()
        for t in threads:
            t.join(10)
    assert max(peak) == 2 and not running and limit.waited == 3


def test_waiters_are_served_first_come_first_served():
    slots = FairSlots(1)
    assert slots.acquire(0) == (True, False)
    order: list[int] = []

    def wait(i: int) -> None:
        got, waited = slots.acquire(10)
        assert got and waited
        order.append(i)
        slots.release()

    threads = []
    for i in range(4):
        threads.append(threading.Thread(target=wait, args=(i,)))
        threads[-1].start()
        while slots.waiting() < i + 1:  # queued in this order
            time.sleep(0.001)
    slots.release()
    for t in threads:
        t.join(10)
    assert order == [0, 1, 2, 3]


def test_a_newcomer_never_takes_a_slot_a_waiter_was_handed():
    slots = FairSlots(1)
    slots.acquire(0)
    granted = threading.Event()
    threading.Thread(target=lambda: slots.acquire(10)[0] and granted.set()).start()
    while not slots.waiting():
        time.sleep(0.001)
    slots.release()  # handed straight to the waiter, never free
    assert slots.acquire(0.05) == (False, True)
    assert granted.wait(5)


def test_a_wait_past_its_timeout_is_refused_and_leaves_the_queue():
    limit = EnvironmentLimit(1)
    with limit.slot("fn", timeout_s=1), pytest.raises(TimeoutError, match="within 0 s"):  # noqa: SIM117
        with limit.slot("fn", timeout_s=0.05):
            pass
    with limit.slot("fn", timeout_s=0.05):  # the timed-out waiter did not keep a place
        pass


def test_zero_means_unbounded():
    limit = EnvironmentLimit(0)
    held = [limit.slot("fn") for _ in range(50)]
    for cm in held:
        cm.__enter__()
    for cm in held:
        cm.__exit__(None, None, None)
    assert limit.waited == 0


def test_invocations_are_summed_per_function_into_one_put():
    sent: list = []
    metrics = InvocationMetrics(lambda account, region, data: sent.append((account, region, data)), clock=lambda: 5.0)
    for _ in range(7):
        metrics.record("predict", "000000000000", "us-east-1")
    metrics.record("predict", "000000000000", "us-east-1", error=True)
    metrics.record("batch", "000000000000", "us-east-1")
    assert metrics.flush() == 3
    ((account, region, data),) = sent
    assert (account, region) == ("000000000000", "us-east-1")
    by = {(d["Dimensions"][0]["Value"], d["MetricName"]): d["StatisticValues"] for d in data}
    assert by[("predict", "Invocations")] == {"SampleCount": 8, "Sum": 8, "Minimum": 1, "Maximum": 1}
    assert by[("predict", "Errors")]["Sum"] == 1
    assert by[("batch", "Invocations")]["Sum"] == 1
    assert metrics.flush() == 0 and len(sent) == 1  # nothing new, nothing sent


def test_each_account_and_region_gets_its_own_put_within_the_api_limit():
    sent: list = []
    metrics = InvocationMetrics(lambda account, region, data: sent.append((account, region, len(data))))
    for i in range(MAX_DATUMS + 5):
        metrics.record(f"fn-{i}", "111111111111", "eu-west-1")
    metrics.record("fn", "222222222222", "us-east-1")
    assert metrics.flush() == MAX_DATUMS + 6
    assert sorted(sent) == [
        ("111111111111", "eu-west-1", 5),
        ("111111111111", "eu-west-1", MAX_DATUMS),
        ("222222222222", "us-east-1", 1),
    ]


def test_a_failing_cloudwatch_loses_that_second_and_nothing_else(caplog):
    def down(account, region, data):
        raise ConnectionError("cloudwatch down")

    metrics = InvocationMetrics(down)
    metrics.record("predict", "000000000000", "us-east-1")
    with caplog.at_level("INFO"):
        assert metrics.flush() == 0
    assert "cloudwatch down" in caplog.text


def test_the_local_cloud_passes_the_bound_and_dispatches_its_own_calls_in_memory(tmp_path):
    from localcloud.runtime import localstack_env
    from localcloud.settings import LocalCloudSettings

    default = localstack_env(LocalCloudSettings(state_dir=tmp_path))
    assert default["DR_LAMBDA_MAX_ENVIRONMENTS"] == "" and default["IN_MEMORY_CLIENT"] == "1"
    bounded = localstack_env(LocalCloudSettings(state_dir=tmp_path, lambda_max_environments=0))
    assert bounded["DR_LAMBDA_MAX_ENVIRONMENTS"] == "0"  # unbounded: LocalStack's own way, for the bench's baseline
    assert limit_from_env(bounded) == 0


def _serve(worker):
    from http.server import ThreadingHTTPServer

    from dr_host_executor.worker import _make_http_handler

    server = ThreadingHTTPServer(("127.0.0.1", 0), _make_http_handler(worker))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def _post(port: int, path: str, payload: dict) -> tuple[int, str | None, bytes]:
    import http.client
    import json

    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    connection.request("POST", path, json.dumps(payload), {"Content-Type": "application/json"})
    response = connection.getresponse()
    return response.status, response.getheader("X-DR-Outcome"), response.read()


def test_an_inline_invocation_answers_its_result_in_the_same_exchange(capsys):
    import json

    from dr_host_executor.worker import END_MARKER, Worker

    worker = Worker("http://127.0.0.1:1", "runtime-1", "m.handler", timeout_s=3)  # nothing listens on port 1
    worker.handler = lambda event, context: {"doubled": event["n"] * 2, "request": context.aws_request_id}
    server = _serve(worker)
    try:
        status, outcome, body = _post(
            server.server_port, "/invoke-inline", {"invoke-id": "r-1", "payload": '{"n": 21}'}
        )
    finally:
        server.shutdown()
    assert (status, outcome) == (200, "response")
    assert json.loads(body) == {"doubled": 42, "request": "r-1"}
    printed = capsys.readouterr().out
    assert "START RequestId: r-1" in printed and "REPORT RequestId: r-1" in printed and END_MARKER + "r-1" in printed


def test_an_inline_invocation_that_raises_answers_the_error_document():
    import json

    from dr_host_executor.worker import Worker

    def handler(event, context):
        raise ValueError("bad patient row")

    worker = Worker("http://127.0.0.1:1", "runtime-1", "m.handler", timeout_s=3)
    worker.handler = handler
    server = _serve(worker)
    try:
        status, outcome, body = _post(server.server_port, "/invoke-inline", {"invoke-id": "r-2", "payload": "{}"})
        # an answer that is not JSON is the runtime's marshal error, as on AWS
        worker.handler = lambda event, context: {1, 2}
        _, marshal_outcome, marshal_body = _post(server.server_port, "/invoke-inline", {"invoke-id": "r-3"})
    finally:
        server.shutdown()
    doc = json.loads(body)
    assert (status, outcome) == (200, "error")
    assert doc["errorType"] == "ValueError" and doc["errorMessage"] == "bad patient row" and doc["requestId"] == "r-2"
    assert marshal_outcome == "error" and json.loads(marshal_body)["errorType"] == "Runtime.MarshalError"


def test_a_stopped_version_refuses_its_waiters_and_newcomers():
    limit = EnvironmentLimit(1)
    refused: list[str] = []

    def wait() -> None:
        try:
            with limit.slot("v1", timeout_s=10):
                pass
        except LookupError as exc:
            refused.append(str(exc))

    with limit.slot("v1", timeout_s=1):
        waiter = threading.Thread(target=wait)
        waiter.start()
        while limit.waiting("v1") < 1:
            time.sleep(0.001)
        limit.close("v1")  # the function was updated while a request waited for its old version
        waiter.join(5)
    assert refused == ["its function version was stopped while it waited"]
    assert limit.waiting("v1") == 0 and "v1" not in limit._slots  # nothing kept for a version that is gone
    with limit.slot("v2", timeout_s=1):  # the new version has slots of its own
        pass


def test_sign_refuses_a_query_string_it_would_not_sign_as_aws_does():
    from inference_core.sigv4 import Credentials, sign

    with pytest.raises(ValueError, match="without a query string"):
        sign("GET", "https://b.s3.us-east-1.amazonaws.com/key?versionId=1", Credentials("a", "b"), "us-east-1", "s3")


def test_the_training_step_handlers_import_no_model_library_at_cold_start():
    """Only the Train and Evaluate steps need scikit-learn and XGBoost (≈ 1 s of imports): the handlers' module
    imports neither, and the model card (Register, Promote) needs neither them nor matplotlib."""
    import subprocess
    import sys

    code = (
        "import sys; sys.path[:0] = ['functions', '.'];"
        "import training_steps.handlers;"
        "print(sorted({'sklearn', 'xgboost', 'mlflow', 'feast'} & {m.split('.')[0] for m in sys.modules}));"
        # what Register and Promote import to write the model card and talk to the registry
        "import training.tracking, training.model_card;"
        "print(sorted({'sklearn', 'xgboost', 'matplotlib'} & {m.split('.')[0] for m in sys.modules}))"
    )
    env = {"PATH": "/usr/bin", "AWS_DEFAULT_REGION": "us-east-1", "DR_ARTIFACTS_BUCKET": "art", "DR_DATA_BUCKET": "dat"}
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env, cwd=root)
    assert out.stdout.split() == ["[]", "[]"]
