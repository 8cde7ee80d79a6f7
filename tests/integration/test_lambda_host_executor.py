"""Python Lambdas on the host executor: sync/async, errors, timeouts, concurrency, logs, env."""

from __future__ import annotations

import base64
import json
import threading
import time
import uuid

import psutil
import pytest

from localcloud.smoke import LAMBDA_ROLE, deploy_function, zip_source

pytestmark = pytest.mark.integration

SOURCE = """
import json, os, time, boto3

def handler(event, context):
    action = event.get("action")
    print("marker", event.get("marker"), "pid", os.getpid(), flush=True)
    if action == "raise":
        raise RuntimeError("deliberate failure: " + event.get("why", ""))
    if action == "sleep":
        time.sleep(event["seconds"])
    if action == "put":
        boto3.client("s3").put_object(Bucket=event["bucket"], Key=event["key"], Body=b"async done")
    return {"pid": os.getpid(), "greeting": os.environ.get("GREETING"), "event": event}
"""


@pytest.fixture(scope="module")
def fn(aws):
    name = "it-host-" + uuid.uuid4().hex[:6]
    deploy_function(aws.lambda_, name, SOURCE, timeout=2, env={"GREETING": "hello"})
    return name


def call(aws, fn, event, **kw):
    reply = aws.lambda_.invoke(FunctionName=fn, Payload=json.dumps(event), **kw)
    return reply, json.loads(reply["Payload"].read() or b"null")


def test_sync_invoke_returns_result_and_passes_environment(aws, fn):
    reply, body = call(aws, fn, {"x": 1})
    assert reply["StatusCode"] == 200 and "FunctionError" not in reply
    assert body["greeting"] == "hello"
    assert body["event"] == {"x": 1}


def test_warm_environment_is_reused(aws, fn):
    _, first = call(aws, fn, {})
    _, second = call(aws, fn, {})
    assert first["pid"] == second["pid"]


def test_async_invoke_runs_the_handler(aws, fn):
    aws.s3.create_bucket(Bucket="it-async")
    key = f"done-{uuid.uuid4().hex}"
    reply = aws.lambda_.invoke(
        FunctionName=fn,
        InvocationType="Event",
        Payload=json.dumps({"action": "put", "bucket": "it-async", "key": key}),
    )
    assert reply["StatusCode"] == 202
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        objects = aws.s3.list_objects_v2(Bucket="it-async").get("Contents", [])
        if any(o["Key"] == key for o in objects):
            break
        time.sleep(0.3)
    else:
        pytest.fail("the asynchronous invocation never wrote its object")
    assert aws.s3.get_object(Bucket="it-async", Key=key)["Body"].read() == b"async done"


def test_raising_handler_is_a_function_error_with_message_and_trace(aws, fn):
    reply, body = call(aws, fn, {"action": "raise", "why": "bad row 7"})
    assert reply["FunctionError"] == "Unhandled"
    assert body["errorType"] == "RuntimeError"
    assert body["errorMessage"] == "deliberate failure: bad row 7"
    assert any("app.py" in frame for frame in body["stackTrace"])


def test_timeout_kills_the_process_and_reports_it(aws, fn):
    reply, body = call(aws, fn, {"action": "sleep", "seconds": 30, "marker": "slow"}, LogType="Tail")
    assert reply["FunctionError"] == "Unhandled"
    assert body["errorType"] == "Sandbox.Timedout"
    assert body["errorMessage"].endswith("Task timed out after 2.00 seconds")
    logs = base64.b64decode(reply["LogResult"]).decode()
    assert "Task timed out after 2.00 seconds" in logs
    pid = int(logs.split("marker slow pid ")[1].split()[0])
    deadline = time.monotonic() + 5
    while psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
        assert time.monotonic() < deadline, "the timed-out handler process is still alive"
        time.sleep(0.1)
    # the environment comes back (a new process) for the next invocation
    reply, body = call(aws, fn, {"x": 2})
    assert "FunctionError" not in reply and body["pid"] != pid


def test_two_concurrent_invocations_both_succeed_in_separate_environments(aws, fn):
    results: list = [None, None]

    def run(i):
        results[i] = call(aws, fn, {"action": "sleep", "seconds": 1, "i": i})

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for reply, body in results:
        assert "FunctionError" not in reply, body
    assert {body["event"]["i"] for _, body in results} == {0, 1}
    assert results[0][1]["pid"] != results[1][1]["pid"]


def test_concurrent_invocations_beyond_the_bound_wait_for_a_warm_environment(aws, fn):
    """Five at once with at most two environments per function (conftest): all answer, from at most two processes,
    and never more than two handlers run at the same time."""
    results: list = [None] * 5

    def run(i):
        started = time.time()
        reply, body = call(aws, fn, {"action": "sleep", "seconds": 0.5, "i": i})
        results[i] = (reply, body, started, time.time())

    threads = [threading.Thread(target=run, args=(i,)) for i in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert all(r is not None and "FunctionError" not in r[0] for r in results), results
    assert {r[1]["event"]["i"] for r in results} == set(range(5))
    assert len({r[1]["pid"] for r in results}) <= 2
    assert sum(r[3] - r[2] for r in results) >= 5 * 0.5  # each ran its sleep (no answer came from nowhere)


def test_invocations_are_counted_in_cloudwatch_once_per_second(aws, fn):
    """AWS/Lambda Invocations and Errors are summed per function and sent together: the sums still add up."""
    import datetime as dt

    name = "it-count-" + uuid.uuid4().hex[:6]
    deploy_function(aws.lambda_, name, SOURCE, timeout=5)
    for _ in range(6):
        call(aws, name, {})
    for _ in range(2):
        call(aws, name, {"action": "raise", "why": "counted"})

    def total(metric: str) -> float:
        now = dt.datetime.now(dt.UTC)
        stats = aws.cloudwatch.get_metric_statistics(
            Namespace="AWS/Lambda",
            MetricName=metric,
            Dimensions=[{"Name": "FunctionName", "Value": name}],
            StartTime=now - dt.timedelta(minutes=10),
            EndTime=now + dt.timedelta(minutes=1),
            Period=60,
            Statistics=["Sum"],
        )
        return sum(p["Sum"] for p in stats["Datapoints"])

    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and (total("Invocations"), total("Errors")) != (8, 2):
        time.sleep(0.5)
    assert (total("Invocations"), total("Errors")) == (8, 2)


def test_logs_reach_cloudwatch_logs(aws, fn):
    marker = uuid.uuid4().hex
    call(aws, fn, {"marker": marker})
    group = f"/aws/lambda/{fn}"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            events = aws.logs.filter_log_events(logGroupName=group, filterPattern=marker)["events"]
        except aws.logs.exceptions.ResourceNotFoundException:
            events = []
        if events:
            break
        time.sleep(0.5)
    else:
        pytest.fail(f"marker {marker} never reached CloudWatch Logs group {group}")
    assert any(f"marker {marker}" in e["message"] for e in events)


def test_non_python_runtime_is_refused_clearly(aws):
    name = "it-node-" + uuid.uuid4().hex[:6]
    aws.lambda_.create_function(
        FunctionName=name,
        Runtime="nodejs20.x",
        Role=LAMBDA_ROLE,
        Handler="index.handler",
        Code={"ZipFile": zip_source({"index.js": "exports.handler = async () => 1;"})},
    )
    deadline = time.monotonic() + 20
    while (config := aws.lambda_.get_function(FunctionName=name)["Configuration"])["State"] == "Pending":
        assert time.monotonic() < deadline
        time.sleep(0.3)
    assert config["State"] == "Failed"
    assert "Python runtimes only" in config["StateReason"]


def test_a_function_over_its_memory_size_is_killed_as_out_of_memory(aws):
    """As on AWS: above MemorySize the environment is killed and the invocation answers Runtime.OutOfMemory; the
    REPORT line of a function within its memory shows its own peak, not LocalStack's."""
    source = (
        "def handler(event, context):\n"
        "    block = bytearray(event['mb'] * 2**20)\n"
        "    for i in range(0, len(block), 4096):\n"
        "        block[i] = 1\n"
        "    return len(block)\n"
    )
    deploy_function(aws.lambda_, "dr-it-memory", source, timeout=30, memory=256)
    over = aws.lambda_.invoke(FunctionName="dr-it-memory", Payload=json.dumps({"mb": 600}).encode(), LogType="Tail")
    assert over["FunctionError"] == "Unhandled"
    body = json.loads(over["Payload"].read())
    assert body["errorType"] == "Runtime.OutOfMemory", body
    within = aws.lambda_.invoke(FunctionName="dr-it-memory", Payload=json.dumps({"mb": 50}).encode(), LogType="Tail")
    assert "FunctionError" not in within
    report = base64.b64decode(within["LogResult"]).decode()
    used = int(report.split("Max Memory Used: ")[1].split()[0])
    assert 50 <= used < 256, report  # the function's own peak: its 50 MB and the interpreter, far below LocalStack's


def _worker_pids(function_name: str) -> list[int]:
    """The host processes (execution environments) of one function, found by the name in their environment."""
    pids = []
    for proc in psutil.process_iter(["cmdline"]):
        if not any(part.endswith("worker.py") for part in proc.info["cmdline"] or []):
            continue
        try:
            if proc.environ().get("AWS_LAMBDA_FUNCTION_NAME") == function_name:
                pids.append(proc.pid)
        except psutil.Error:
            continue
    return pids


def test_a_deployed_function_is_started_before_its_first_invocation(aws):
    """The local cloud starts one environment per deployed version (lambda_prewarm): the first invocation is
    answered by that process, not by a cold start of its own."""
    name = "it-prewarm-" + uuid.uuid4().hex[:6]
    deploy_function(aws.lambda_, name, SOURCE, timeout=5)
    # each start queued before it may wait up to DR_LAMBDA_PREWARM_HOLD_S (30 s) for an idle core on a busy runner
    deadline = time.monotonic() + 120
    while not (pids := _worker_pids(name)):
        assert time.monotonic() < deadline, "no environment was started for the deployed function"
        time.sleep(0.2)
    reply, body = call(aws, name, {"first": True})
    assert "FunctionError" not in reply, body
    assert pids == [body["pid"]]
    assert _worker_pids(name) == pids  # no second environment started for it
