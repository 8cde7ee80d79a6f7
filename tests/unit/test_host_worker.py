"""The host executor's worker and process handling, against a fake LocalStack runtime endpoint."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import psutil
import pytest
from dr_host_executor.process import WorkerProcess, free_port


class FakeRuntimeEndpoint:
    """Records what a worker posts to LocalStack's /_localstack_lambda/<id>/... routes."""

    def __init__(self) -> None:
        self.posts: list[tuple[str, dict]] = []
        self.cond = threading.Condition()
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with endpoint.cond:
                    endpoint.posts.append((self.path, json.loads(body or b"{}")))
                    endpoint.cond.notify_all()
                self.send_response(202)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/_localstack_lambda/env1"

    def wait_for(self, suffix: str, timeout: float = 15.0) -> dict:
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for path, body in self.posts:
                    if path.endswith(suffix):
                        return body
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"no POST ending in {suffix}; got {[p for p, _ in self.posts]}")
                self.cond.wait(remaining)

    def close(self) -> None:
        self.server.shutdown()


HANDLERS = """
import json, os, subprocess, sys, time
print("cold start of app", flush=True)

def ok(event, context):
    print("hello from", context.function_name, flush=True)
    remaining = context.get_remaining_time_in_millis()
    return {"echo": event, "greeting": os.environ.get("GREETING"), "remaining": remaining}

def boom(event, context):
    raise ValueError("bad value: " + str(event.get("x")))

def unserializable(event, context):
    return {"when": object()}

def spawn_and_sleep(event, context):
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    print("child", child.pid, flush=True)
    time.sleep(60)

def die(event, context):
    os._exit(3)
"""


@pytest.fixture
def endpoint():
    fake = FakeRuntimeEndpoint()
    yield fake
    fake.close()


def start_worker(endpoint: FakeRuntimeEndpoint, code_dir: Path, handler: str, on_exit=None) -> tuple:
    port = free_port()
    env = {
        "LOCALSTACK_RUNTIME_ENDPOINT": endpoint.url,
        "LOCALSTACK_RUNTIME_ID": "rt1",
        "DR_WORKER_PORT": str(port),
        "_HANDLER": handler,
        "AWS_LAMBDA_FUNCTION_NAME": "fn-under-test",
        "AWS_LAMBDA_FUNCTION_TIMEOUT": "7",
        "GREETING": "hi",
        "PYTHONPATH": str(code_dir),
        "PYTHONUNBUFFERED": "1",
        "PATH": os.environ["PATH"],
    }
    proc = WorkerProcess(sys.executable, env, str(code_dir), on_exit=on_exit)
    proc.start()
    return proc, port


def invoke(port: int, request_id: str, event: dict) -> None:
    payload = {"invoke-id": request_id, "invoked-function-arn": "arn:fn", "payload": json.dumps(event)}
    req = urllib.request.Request(f"http://127.0.0.1:{port}/invoke", data=json.dumps(payload).encode(), method="POST")
    deadline = time.monotonic() + 10
    while True:
        try:
            with urllib.request.urlopen(req, timeout=5) as r:
                assert r.status == 202
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


@pytest.fixture
def code_dir(tmp_path: Path) -> Path:
    (tmp_path / "app.py").write_text(HANDLERS)
    return tmp_path


def test_handler_result_env_and_logs_of_one_invocation(endpoint, code_dir):
    proc, port = start_worker(endpoint, code_dir, "app.ok")
    try:
        endpoint.wait_for("/status/rt1/ready")
        proc.begin_invocation("req-1")
        invoke(port, "req-1", {"a": 1})
        result = endpoint.wait_for("/invocations/req-1/response")
        assert result["echo"] == {"a": 1}
        assert result["greeting"] == "hi"  # the function's environment is passed through
        assert 0 < result["remaining"] <= 7000
        logs = proc.invocation_output("req-1")
        assert "START RequestId: req-1" in logs
        assert "hello from fn-under-test" in logs
        assert "END RequestId: req-1" in logs and "REPORT RequestId: req-1" in logs
        assert "cold start of app" not in logs  # init output is not part of the invocation's logs
        assert "\x1e" not in logs  # the end marker never leaks into logs
    finally:
        proc.kill()


def test_handler_exception_becomes_error_with_type_message_and_trace(endpoint, code_dir):
    proc, port = start_worker(endpoint, code_dir, "app.boom")
    try:
        endpoint.wait_for("/status/rt1/ready")
        invoke(port, "req-2", {"x": 42})
        error = endpoint.wait_for("/invocations/req-2/error")
        assert error["errorType"] == "ValueError"
        assert error["errorMessage"] == "bad value: 42"
        assert any("app.py" in frame and "boom" in frame for frame in error["stackTrace"])
        assert not any("worker.py" in frame for frame in error["stackTrace"])
    finally:
        proc.kill()


def test_unserializable_result_is_a_marshal_error(endpoint, code_dir):
    proc, port = start_worker(endpoint, code_dir, "app.unserializable")
    try:
        endpoint.wait_for("/status/rt1/ready")
        invoke(port, "req-3", {})
        error = endpoint.wait_for("/invocations/req-3/error")
        assert error["errorType"] == "Runtime.MarshalError"
        assert "marshal" in error["errorMessage"].lower()
    finally:
        proc.kill()


def test_import_error_is_reported_at_init(endpoint, tmp_path):
    (tmp_path / "broken.py").write_text("import no_such_module_here\n")
    exited = threading.Event()
    proc, _ = start_worker(endpoint, tmp_path, "broken.handler", on_exit=lambda code: exited.set())
    error = endpoint.wait_for("/status/rt1/error")
    assert error["errorType"] == "Runtime.ImportModuleError"
    assert "no_such_module_here" in error["errorMessage"]
    assert exited.wait(10), "the worker should exit after a failed init"
    proc.kill()


def test_missing_handler_function_is_reported(endpoint, code_dir):
    proc, _ = start_worker(endpoint, code_dir, "app.nope")
    try:
        error = endpoint.wait_for("/status/rt1/error")
        assert error["errorType"] == "Runtime.HandlerNotFound"
        assert "nope" in error["errorMessage"]
    finally:
        proc.kill()


def test_kill_ends_the_handler_and_its_children(endpoint, code_dir):
    proc, port = start_worker(endpoint, code_dir, "app.spawn_and_sleep")
    try:
        endpoint.wait_for("/status/rt1/ready")
        proc.begin_invocation("req-4")
        invoke(port, "req-4", {})
        deadline = time.monotonic() + 10
        child_pid = None
        while child_pid is None and time.monotonic() < deadline:
            for line in proc.all_output().splitlines():
                if line.startswith("child "):
                    child_pid = int(line.split()[1])
            time.sleep(0.05)
        assert child_pid and psutil.pid_exists(child_pid)
        worker_pid = proc.pid
    finally:
        proc.kill()
    assert not proc.alive()
    for pid in (worker_pid, child_pid):
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


def test_exit_during_invocation_calls_on_exit(endpoint, code_dir):
    codes: list[int | None] = []
    exited = threading.Event()
    proc, port = start_worker(endpoint, code_dir, "app.die", on_exit=lambda code: (codes.append(code), exited.set()))
    endpoint.wait_for("/status/rt1/ready")
    invoke(port, "req-5", {})
    assert exited.wait(10)
    assert codes == [3]
    proc.kill()


def test_report_gives_the_function_process_own_peak_memory_not_the_parents():
    """ru_maxrss survives fork/exec: a child of a process that peaked at 300 MB reports >= 300 MB there, while
    VmHWM (what REPORT now uses) is the child's own few MB."""
    code = (
        "import os, resource, subprocess, sys\n"
        "block = bytearray(300 * 2**20)\n"
        "for i in range(0, len(block), 4096): block[i] = 1\n"
        "child = 'import resource; from dr_host_executor.worker import peak_memory_mb; "
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024, peak_memory_mb())'\n"
        "print(subprocess.run([sys.executable, '-c', child], capture_output=True, text=True, check=True).stdout)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    inherited, own = map(int, out.split())
    assert inherited >= 300  # what the old REPORT line showed
    assert own < 150  # the interpreter and the import, nothing of the parent's 300 MB


def test_memory_of_a_process_tree_counts_its_children():
    """What the executor's watchdog compares with the function's MemorySize (killing it with
    Runtime.OutOfMemory above it, as AWS does)."""
    from dr_host_executor.process import tree_rss_mb

    code = (
        "import subprocess, sys, time\n"
        "child = subprocess.Popen([sys.executable, '-c', "
        "'b = bytearray(200 * 2**20)\\nfor i in range(0, len(b), 4096): b[i] = 1\\nprint(1, flush=True)\\n"
        "import time; time.sleep(30)'], stdout=subprocess.PIPE)\n"
        "child.stdout.readline(); print('ready', flush=True); time.sleep(30)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout.readline().strip() == "ready"
        assert tree_rss_mb(parent.pid) > 200  # the child's 200 MB count for the function
        assert tree_rss_mb(2**22 + 12345) == 0.0  # a pid that does not exist
    finally:
        for p in [*psutil.Process(parent.pid).children(recursive=True), psutil.Process(parent.pid)]:
            p.kill()
