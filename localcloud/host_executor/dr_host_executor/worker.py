"""Runtime interface for one Python Lambda execution environment on the host.

This stands in for LocalStack's Go `lambda-runtime-init` (which only runs inside Docker): it imports the
handler once (the cold start), tells LocalStack it is ready, then serves invocations one at a time on a
loopback port. A result or error is the answer to the executor's request (/invoke-inline), or, on the old path
(/invoke), a request of its own to LocalStack's runtime endpoint. Everything the handler prints
goes to this process's stdout, which the executor captures per invocation; the line starting with
END_MARKER tells the executor that an invocation's output is complete.

Standard library only: it runs under whatever interpreter the function uses.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import resource
import sys
import threading
import time
import traceback
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

END_MARKER = "\x1edr-host-executor-end "


# Loopback only: never route through a proxy from the environment. Built once: build_opener makes an HTTPS
# handler, whose SSL context (the CA bundle read) cost milliseconds on every invocation (per call as before with
# DR_EXECUTOR_FAST_PATH=0, the benchmark's baseline).
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))
_FAST_PATH = os.environ.get("DR_EXECUTOR_FAST_PATH", "1").strip().lower() not in ("0", "false", "no")


def _post(url: str, body: bytes | dict[str, Any]) -> None:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method="POST", headers={"Content-Type": "application/json"})
    opener = _OPENER if _FAST_PATH else urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(request, timeout=30) as response:
        response.read()


def error_object(exc: BaseException, request_id: str | None = None, error_type: str | None = None) -> dict:
    """The error document AWS's Python runtime returns: type, message and the handler's stack frames."""
    frames = traceback.extract_tb(exc.__traceback__)
    # Drop this module's own frames so the trace starts in the user's code, as on AWS.
    user_frames = [f for f in frames if f.filename != __file__]
    doc: dict[str, Any] = {
        "errorMessage": str(exc),
        "errorType": error_type or type(exc).__name__,
        "stackTrace": traceback.format_list(user_frames),
    }
    if request_id:
        doc["requestId"] = request_id
    return doc


class LambdaContext:
    """The `context` argument of a handler, with the attributes AWS documents."""

    def __init__(self, invocation: dict[str, Any], timeout_s: float) -> None:
        env = os.environ
        self.function_name = env.get("AWS_LAMBDA_FUNCTION_NAME", "")
        self.function_version = env.get("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        self.memory_limit_in_mb = int(env.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128"))
        self.log_group_name = env.get("AWS_LAMBDA_LOG_GROUP_NAME", "")
        self.log_stream_name = env.get("AWS_LAMBDA_LOG_STREAM_NAME", "")
        self.invoked_function_arn = invocation.get("invoked-function-arn", "")
        self.aws_request_id = invocation.get("invoke-id", "")
        self.identity = None
        self.client_context = None
        self._deadline = time.monotonic() + timeout_s

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


class Worker:
    """Imports the handler and runs invocations; reports to LocalStack's runtime endpoint."""

    def __init__(self, runtime_endpoint: str, runtime_id: str, handler_spec: str, timeout_s: float) -> None:
        self.runtime_endpoint = runtime_endpoint.rstrip("/")
        self.runtime_id = runtime_id
        self.handler_spec = handler_spec
        self.timeout_s = timeout_s
        self.handler = None
        self._lock = threading.Lock()

    def load_handler(self) -> bool:
        """Import `module.function` from _HANDLER; report an init error to LocalStack on failure."""
        try:
            module_name, _, function_name = self.handler_spec.rpartition(".")
            if not module_name:
                raise ValueError(f"Bad handler {self.handler_spec!r}: expected 'module.function'")
            module = importlib.import_module(module_name.replace("/", "."))
        except Exception as exc:
            traceback.print_exc()
            self._report_init_error(
                exc, "Runtime.ImportModuleError", f"Unable to import module '{self.handler_spec}': {exc}"
            )
            return False
        handler = getattr(module, function_name, None)
        if not callable(handler):
            exc = AttributeError(f"Handler '{function_name}' missing on module '{module_name}'")
            print(f"[ERROR] {exc}", flush=True)
            self._report_init_error(exc, "Runtime.HandlerNotFound", str(exc))
            return False
        self.handler = handler
        return True

    def _report_init_error(self, exc: BaseException, error_type: str, message: str) -> None:
        doc = error_object(exc, error_type=error_type)
        doc["errorMessage"] = message
        _post(f"{self.runtime_endpoint}/status/{self.runtime_id}/error", doc)

    def report_ready(self) -> None:
        _post(f"{self.runtime_endpoint}/status/{self.runtime_id}/ready", b"{}")

    def run(self, invocation: dict[str, Any]) -> None:
        """Run one invocation and post its result to LocalStack's runtime endpoint (the runtime API's way)."""
        path, body = self.execute(invocation)
        _post(self.runtime_endpoint + path, body)

    def execute(self, invocation: dict[str, Any]) -> tuple[str, bytes]:
        """Run one invocation; print AWS-style START/END/REPORT lines around the handler's output. Returns the
        runtime endpoint's path for the outcome (`.../response` or `.../error`) and the body."""
        with self._lock:
            request_id = invocation["invoke-id"]
            os.environ["_X_AMZN_TRACE_ID"] = invocation.get("trace-id") or ""
            version = os.environ.get("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            print(f"START RequestId: {request_id} Version: {version}", flush=True)
            started = time.perf_counter()
            try:
                event = json.loads(invocation.get("payload") or "null")
                result = self.handler(event, LambdaContext(invocation, self.timeout_s))
                try:
                    body = json.dumps(result).encode()
                except (TypeError, ValueError) as exc:
                    raise _MarshalError(f"Unable to marshal response: {exc}") from exc
                path = f"/invocations/{request_id}/response"
            except Exception as exc:
                error_type = "Runtime.MarshalError" if isinstance(exc, _MarshalError) else None
                doc = error_object(exc, request_id, error_type)
                print(f"[ERROR] {doc['errorType']}: {doc['errorMessage']}", flush=True)
                traceback.print_exc(file=sys.stdout)
                body = json.dumps(doc).encode()
                path = f"/invocations/{request_id}/error"
            duration_ms = (time.perf_counter() - started) * 1000
            sys.stdout.flush()
            sys.stderr.flush()
            memory_mb = os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
            max_rss_mb = peak_memory_mb()
            print(f"END RequestId: {request_id}", flush=True)
            print(
                f"REPORT RequestId: {request_id}\tDuration: {duration_ms:.2f} ms\t"
                f"Billed Duration: {int(duration_ms) + 1} ms\tMemory Size: {memory_mb} MB\t"
                f"Max Memory Used: {max_rss_mb} MB",
                flush=True,
            )
            print(f"{END_MARKER}{request_id}", flush=True)
            return path, body


def peak_memory_mb() -> int:
    """This process's own peak resident memory (VmHWM). ru_maxrss survives fork/exec, so under LocalStack it
    reported LocalStack's peak (440-620 MB for every function) instead of the function's."""
    try:
        for line in open("/proc/self/status").read().splitlines():  # noqa: SIM115 (one short read)
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) // 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak // 2**20 if sys.platform == "darwin" else peak // 1024  # bytes on macOS, KiB on Linux


class _MarshalError(Exception):
    pass


def _make_http_handler(worker: Worker) -> type[BaseHTTPRequestHandler]:
    class InvokeHandler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:  # keep access logs out of the function's logs
            pass

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", 0))
            invocation = json.loads(self.rfile.read(length) or b"{}")
            if self.path == "/invoke-inline":
                # The result in this response: one HTTP exchange with the executor instead of a second request
                # through LocalStack's gateway (its runtime endpoint), which cost the gateway's CPU per invocation.
                path, body = worker.execute(invocation)
                self.send_response(200)
                self.send_header("X-DR-Outcome", "error" if path.endswith("/error") else "response")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return
            self.send_response(202)
            self.send_header("Content-Length", "0")
            self.end_headers()
            threading.Thread(target=worker.run, args=(invocation,), daemon=True).start()

    return InvokeHandler


def _exit_when_orphaned(parent_pid: int) -> None:
    """End this environment if LocalStack goes away without stopping it (e.g. killed)."""
    while True:
        time.sleep(1.0)
        if os.getppid() != parent_pid:
            os._exit(0)


def main() -> None:
    logging.basicConfig(
        level=os.environ.get("AWS_LAMBDA_LOG_LEVEL", "INFO").upper(),
        stream=sys.stdout,
        format="[%(levelname)s]\t%(asctime)s\t%(name)s\t%(message)s",
    )
    worker = Worker(
        runtime_endpoint=os.environ["LOCALSTACK_RUNTIME_ENDPOINT"],
        runtime_id=os.environ["LOCALSTACK_RUNTIME_ID"],
        handler_spec=os.environ["_HANDLER"],
        timeout_s=float(os.environ.get("AWS_LAMBDA_FUNCTION_TIMEOUT", "3")),
    )
    threading.Thread(target=_exit_when_orphaned, args=(os.getppid(),), daemon=True).start()
    server = ThreadingHTTPServer(("127.0.0.1", int(os.environ["DR_WORKER_PORT"])), _make_http_handler(worker))
    if not worker.load_handler():
        sys.exit(1)
    worker.report_ready()
    server.serve_forever()


if __name__ == "__main__":
    main()
