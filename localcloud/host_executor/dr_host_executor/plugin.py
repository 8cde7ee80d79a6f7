"""LocalStack Lambda runtime executor `host`: zip-packaged Python functions as host subprocesses.

Selected with LAMBDA_RUNTIME_EXECUTOR=host. What Docker's runtime-init does for stock LocalStack is done
here and in `worker`: the function's environment, one process per execution environment (so concurrent
invocations run side by side and warm ones are reused), the function timeout enforced by killing the
process ("Task timed out after N seconds", as on AWS), handler errors returned as FunctionError, and one
invocation's output handed to LocalStack, which sends it to CloudWatch Logs.

Interpreter: DR_LAMBDA_PYTHON, else LAMBDA_HOST_PYTHON_<3_13>, else `python3.13` on PATH, else the one
running LocalStack.
"""

from __future__ import annotations

import contextlib
import gc
import http.client
import json
import logging
import os
import threading
import time
import urllib.request
from concurrent.futures import Future, InvalidStateError
from concurrent.futures import TimeoutError as FutureTimeout

from localstack.services.lambda_.invocation.plugins import RuntimeExecutorPlugin

from .environments import EnvironmentLimit, limit_from_env
from .lambda_metrics import InvocationMetrics
from .prewarm import IdleCores, Prewarmer, enabled_from_env, hold_from_env
from .process import WorkerProcess, check_supported, free_port, peak_mb, python_for, timeout_message, tree_rss_mb

LOG = logging.getLogger(__name__)


class HostRuntimeExecutorPlugin(RuntimeExecutorPlugin):
    name = "host"

    def load(self, *args, **kwargs):
        return _executor_class()


# Built once (thread-safe for these plain POSTs): build_opener makes an HTTPS handler whose SSL context cost
# ≈ 2.5 ms of CPU on every invocation (py-spy on the invoke path, 2026-12-01).
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))
# DR_EXECUTOR_FAST_PATH=0: the executor as it was before 2026-12-01 (an opener per request, one PutMetricData per
# invocation, a new environment per concurrent request, results through LocalStack's runtime endpoint), kept so
# bench/bench_loop.py measures today's way beside the old one in the same run.
FAST_PATH = os.environ.get("DR_EXECUTOR_FAST_PATH", "1").strip().lower() not in ("0", "false", "no")


def _post_json(url: str, payload: dict, attempts: int = 6) -> None:
    opener = _OPENER if FAST_PATH else urllib.request.build_opener(urllib.request.ProxyHandler({}))
    request = urllib.request.Request(
        url, data=json.dumps(payload).encode(), method="POST", headers={"Content-Type": "application/json"}
    )
    delay = 0.05
    for attempt in range(attempts):
        try:
            with opener.open(request, timeout=10) as response:
                response.read()
            return
        except OSError:
            if attempt == attempts - 1:
                raise
            time.sleep(delay)
            delay *= 2


def _invoke_inline(port: int, payload: dict, future: Future) -> None:
    """Send an invocation and take its result from the same exchange (the worker's /invoke-inline). A process that
    dies meanwhile (killed on timeout or memory) resolves the future elsewhere: nothing to do here then."""
    from localstack.services.lambda_.invocation.lambda_models import InvocationResult

    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=None)
    try:
        connection.request("POST", "/invoke-inline", json.dumps(payload), {"Content-Type": "application/json"})
        response = connection.getresponse()
        body = response.read()
        outcome = response.getheader("X-DR-Outcome")
    except (OSError, http.client.HTTPException) as exc:
        LOG.debug("host-lambda: inline invoke on port %s ended without an answer: %s", port, exc)
        # A killed process (timeout, memory, a crash) resolves the future elsewhere; a live one that closed the
        # exchange without an answer (a handler's SystemExit) gets the runtime's exit error here, not a timeout.
        time.sleep(0.2)
        if not future.done():
            doc = {"errorType": "Runtime.ExitError", "errorMessage": f"Runtime exited without an answer: {exc}"}
            with contextlib.suppress(InvalidStateError):
                future.set_result(
                    InvocationResult(payload["invoke-id"], json.dumps(doc).encode(), is_error=True, logs=None)
                )
        return
    finally:
        connection.close()
    if response.status != 200 or outcome not in ("response", "error"):
        body = json.dumps({"errorType": "Runtime.Unknown", "errorMessage": f"worker answered {response.status}"})
        outcome = "error"
    with contextlib.suppress(InvalidStateError):  # already resolved (the process exited, the invocation timed out)
        future.set_result(InvocationResult(payload["invoke-id"], body, is_error=outcome == "error", logs=None))


def _honour_logging_config() -> None:
    """Ship a function's logs to the log group its LoggingConfig names, as AWS does (LocalStack 4.14 always
    uses /aws/lambda/<name>, so subscriptions and alarms on a CDK-declared log group would never see a line)."""
    from localstack.services.lambda_.invocation.execution_environment import ExecutionEnvironment

    if getattr(ExecutionEnvironment.get_log_group_name, "_dr", False):
        return

    def get_log_group_name(self) -> str:
        configured = (self.function_version.config.logging_config or {}).get("LogGroup")
        return configured or f"/aws/lambda/{self.function_version.id.function_name}"

    get_log_group_name._dr = True
    ExecutionEnvironment.get_log_group_name = get_log_group_name


WATCH_S = 0.1  # how often a running invocation's memory is read


MAX_ITEMS_PER_PUT = 200  # invocations' logs shipped in one PutLogEvents (well inside its 10,000 events / 1 MB)


def _batch_log_shipping() -> None:
    """Ship what is queued in one PutLogEvents per log stream, as the Lambda service does on AWS. LocalStack's
    log thread (one per function) made one call per invocation: at 20 invocations/s on 2 cores it fell
    seconds, then minutes, behind, and so did every metric read from the logs."""
    from queue import Empty

    from localstack.aws.connect import connect_to
    from localstack.services.lambda_.invocation import logs as ls_logs
    from localstack.utils.aws.client_types import ServicePrincipal

    if getattr(ls_logs.LogHandler.run_log_loop, "_dr", False):
        return

    def put(client, group: str, stream: str, events: list[dict]) -> None:
        try:
            client.put_log_events(logGroupName=group, logStreamName=stream, logEvents=events)
        except client.exceptions.ResourceNotFoundException:
            with contextlib.suppress(client.exceptions.ResourceAlreadyExistsException):
                client.create_log_group(logGroupName=group)
            with contextlib.suppress(client.exceptions.ResourceAlreadyExistsException):
                client.create_log_stream(logGroupName=group, logStreamName=stream)
            client.put_log_events(logGroupName=group, logStreamName=stream, logEvents=events)

    def run_log_loop(self, *args, **kwargs) -> None:
        client = connect_to.with_assumed_role(
            region_name=self.region, role_arn=self.role_arn, service_principal=ServicePrincipal.lambda_
        ).logs
        stop = False
        last_ms = 0
        while not stop:  # until the shutdown marker: what was queued before it is still shipped
            items = [self.log_queue.get()]
            while len(items) < MAX_ITEMS_PER_PUT:
                try:
                    items.append(self.log_queue.get_nowait())
                except Empty:
                    break
            streams: dict[tuple[str, str], list[dict]] = {}
            for item in items:
                if item is ls_logs.QUEUE_SHUTDOWN:
                    stop = True
                    continue
                now = last_ms = max(int(time.time() * 1000), last_ms)  # never backwards within a call
                events = streams.setdefault((item.log_group, item.log_stream), [])
                events += [{"timestamp": now, "message": line + "\n"} for line in item.logs.split("\n") if line]
            for (group, stream), events in streams.items():
                if not events:
                    continue
                try:
                    put(client, group, stream, events)
                except Exception as exc:
                    LOG.warning("Error saving logs to group %s in region %s: %s", group, self.region, exc)

    run_log_loop._dr = True
    ls_logs.LogHandler.run_log_loop = run_log_loop


def _coalesce_lambda_metrics() -> None:
    """AWS/Lambda Invocations and Errors summed per function and sent once a second (see lambda_metrics)."""
    from localstack.aws.connect import connect_to
    from localstack.services.lambda_.invocation import version_manager
    from localstack.utils.bootstrap import is_api_enabled

    if getattr(version_manager.record_cw_metric_invocation, "_dr", False):
        return

    def sink(account: str, region: str, data: list[dict]) -> None:
        if is_api_enabled("cloudwatch"):
            client = connect_to(aws_access_key_id=account, region_name=region).cloudwatch
            client.put_metric_data(Namespace="AWS/Lambda", MetricData=data)

    counts = InvocationMetrics(sink)

    def record_invocation(function_name: str, account_id: str, region_name: str) -> None:
        counts.record(function_name, account_id, region_name)

    def record_error(function_name: str, account_id: str, region_name: str) -> None:
        counts.record(function_name, account_id, region_name, error=True)

    record_invocation._dr = True
    version_manager.record_cw_metric_invocation = record_invocation
    version_manager.record_cw_metric_error = record_error


def _bound_environments() -> None:
    """At most DR_LAMBDA_MAX_ENVIRONMENTS environments per function; a request beyond waits for a warm one (see
    environments). Waiting longer than the function's timeout is a throttle (429), as AWS answers over a limit."""
    from localstack.aws.api import ServiceException
    from localstack.aws.api.lambda_ import TooManyRequestsException
    from localstack.services.lambda_.invocation.assignment import AssignmentService

    if getattr(AssignmentService.get_environment, "_dr", False):
        return
    limit = EnvironmentLimit(limit_from_env())
    original = AssignmentService.get_environment
    original_stop = AssignmentService.stop_environments_for_version

    def stop_environments_for_version(self, version_manager_id: str):
        # the version is going (updated, deleted): its waiters must not start an environment of the old code
        limit.close(version_manager_id)
        return original_stop(self, version_manager_id)

    @contextlib.contextmanager
    def get_environment(self, version_manager_id, function_version, provisioning_type):
        with contextlib.ExitStack() as held:
            try:  # the slot is held until the invocation is over
                held.enter_context(limit.slot(version_manager_id, float(function_version.config.timeout or 3)))
            except TimeoutError as exc:
                raise TooManyRequestsException(
                    f"Rate Exceeded. ({exc})", Reason="ConcurrentInvocationLimitExceeded", Type="User"
                ) from exc
            except LookupError as exc:  # closed while waiting: LocalStack's own answer for a version shutting down
                raise ServiceException(f"Got an invocation for a version shutting down ({exc})") from exc
            with original(self, version_manager_id, function_version, provisioning_type) as environment:
                yield environment

    get_environment._dr = True
    AssignmentService.get_environment = get_environment
    AssignmentService.stop_environments_for_version = stop_environments_for_version
    LOG.info("host-lambda: at most %s execution environments per function (0 = unbounded)", limit.limit)


PREWARM = Prewarmer(IdleCores())  # each start waits for an idle core (see prewarm)


def _prewarm_environments() -> None:
    """One environment per function version started once the version is Active, in the background (see prewarm)."""
    from localstack import config
    from localstack.aws.api.lambda_ import State
    from localstack.services.lambda_.invocation.assignment import AssignmentService
    from localstack.services.lambda_.invocation.version_manager import LambdaVersionManager

    if getattr(LambdaVersionManager.start, "_dr", False):
        return
    original_start = LambdaVersionManager.start
    original_get = AssignmentService.get_environment
    original_stop = AssignmentService.stop_environments_for_version
    claim_timeout_s = config.LAMBDA_RUNTIME_ENVIRONMENT_TIMEOUT + 5  # a start is bounded by LocalStack's own timer
    PREWARM.max_hold_s = hold_from_env()

    def start(self):
        state = original_start(self)
        version = self.function_version
        if state.state == State.Active and not version.config.capacity_provider_config:
            service, key = self.assignment_service, self.id

            def adopt(environment) -> None:
                if self.shutdown_event.is_set():  # stopped before its start was queued: never kept
                    raise LookupError("its version was stopped")
                # as after an invocation: stopped when unused for LAMBDA_KEEPALIVE_MS
                timer = threading.Timer(config.LAMBDA_KEEPALIVE_MS / 1000, environment.keepalive_passed)
                timer.daemon = True
                environment.keepalive_timer = timer
                service.environments[key][environment.id] = environment
                timer.start()

            if not self.shutdown_event.is_set():
                PREWARM.schedule(key, lambda: service.start_environment(key, version), adopt, lambda env: env.stop())
        return state

    @contextlib.contextmanager
    def get_environment(self, version_manager_id, function_version, provisioning_type):
        PREWARM.claim(version_manager_id, claim_timeout_s)  # its prewarmed environment, if one is starting
        with original_get(self, version_manager_id, function_version, provisioning_type) as environment:
            yield environment

    def stop_environments_for_version(self, version_manager_id: str):
        PREWARM.close(version_manager_id)
        return original_stop(self, version_manager_id)

    # marked as LocalStack's patched methods: the bound's own check (`_dr`) then finds it installed
    start._dr = get_environment._dr = stop_environments_for_version._dr = True
    LambdaVersionManager.start = start
    AssignmentService.get_environment = get_environment
    AssignmentService.stop_environments_for_version = stop_environments_for_version
    LOG.info(
        "host-lambda: one environment per function version started when it is deployed (DR_LAMBDA_PREWARM), each "
        "after waiting up to %.0f s for an idle core (DR_LAMBDA_PREWARM_HOLD_S)",
        PREWARM.max_hold_s,
    )


def _executor_class():
    # LocalStack's internals are imported here, once the Lambda provider asks for the executor.
    from localstack import config
    from localstack.services.lambda_.invocation.executor_endpoint import (
        ExecutorEndpoint,
        StatusErrorException,
    )
    from localstack.services.lambda_.invocation.lambda_models import InvocationResult
    from localstack.services.lambda_.invocation.runtime_executor import (
        LambdaRuntimeException,
        RuntimeExecutor,
    )

    _honour_logging_config()
    _batch_log_shipping()
    if FAST_PATH:
        _coalesce_lambda_metrics()
        _bound_environments()
        if enabled_from_env():
            _prewarm_environments()
        # LocalStack's heap is fully loaded by the first function: moved out of the collector's sight, a full
        # collection scans only what requests allocate (shorter pauses under load)
        gc.freeze()

    class HostRuntimeExecutor(RuntimeExecutor):
        def __init__(self, id: str, function_version) -> None:
            super().__init__(id=id, function_version=function_version)
            self.port = free_port()
            self.executor_endpoint = ExecutorEndpoint(self.id, "127.0.0.1", self.port)
            self.process: WorkerProcess | None = None
            self._env: dict[str, str] = {}
            self._code_dir = ""
            self._stopping = False
            self._invoke_lock = threading.Lock()

        # lifecycle -------------------------------------------------------------------------------
        def start(self, env_vars: dict[str, str]) -> None:
            cfg = self.function_version.config
            try:
                check_supported(cfg.runtime, cfg.package_type)
            except ValueError as exc:
                raise LambdaRuntimeException(str(exc)) from exc
            self._code_dir = str(cfg.code.get_unzipped_code_location())
            env = {k: str(v) for k, v in env_vars.items()}
            env.update(
                {
                    "LAMBDA_TASK_ROOT": self._code_dir,
                    "PYTHONPATH": self._code_dir,
                    "PYTHONUNBUFFERED": "1",
                    "DR_WORKER_PORT": str(self.port),
                    "DR_EXECUTOR_FAST_PATH": "1" if FAST_PATH else "0",
                    "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                    "HOME": os.environ.get("HOME", "/tmp"),
                    "LANG": os.environ.get("LANG", "C.UTF-8"),
                }
            )
            self._env = env
            self.executor_endpoint.start()
            self._spawn()

        def _spawn(self) -> None:
            runtime = self.function_version.config.runtime
            python = python_for(runtime)
            LOG.debug(
                "host-lambda %s: starting %s with %s on port %s",
                self.function_version.id.function_name,
                self.function_version.config.handler,
                python,
                self.port,
            )
            self._stopping = False
            self.process = WorkerProcess(python, self._env, self._code_dir, on_exit=self._on_exit)
            self.process.start()
            self.executor_endpoint.wait_for_startup()

        def _on_exit(self, code: int | None) -> None:
            """The process ended: fail whatever waits on it, unless we ended it ourselves."""
            if self._stopping:
                return
            endpoint = self.executor_endpoint
            output = self.process.all_output() if self.process else ""
            if endpoint.startup_future is not None and not endpoint.startup_future.done():
                doc = {
                    "errorType": "Runtime.ExitError",
                    "errorMessage": f"Runtime exited during init with exit status {code}",
                    "stackTrace": output.splitlines()[-20:],
                }
                endpoint.startup_future.set_exception(
                    StatusErrorException("Environment startup failed", payload=json.dumps(doc).encode())
                )
                return
            future = endpoint.invocation_future
            if future is not None and not future.done():
                doc = {
                    "errorType": "Runtime.ExitError",
                    "errorMessage": f"Runtime exited with error: exit status {code}",
                }
                with contextlib.suppress(InvalidStateError):  # the inline answer may have arrived meanwhile
                    future.set_result(
                        InvocationResult("", json.dumps(doc).encode(), is_error=True, logs=self.process.output_so_far())
                    )

        def stop(self) -> None:
            self._stopping = True
            if self.process:
                self.process.kill(grace_s=2.0)
            try:
                self.executor_endpoint.shutdown()
            except Exception as exc:  # already unregistered, futures already done
                LOG.debug("host-lambda: endpoint shutdown: %s", exc)

        # invocation ------------------------------------------------------------------------------
        def invoke(self, payload: dict[str, str]):
            with self._invoke_lock:
                if self.process is None or not self.process.alive():
                    # The previous invocation timed out (or the process died): a fresh cold start.
                    self.executor_endpoint.startup_future = Future()
                    self._spawn()
                request_id = payload["invoke-id"]
                timeout_s = float(self.function_version.config.timeout)
                endpoint = self.executor_endpoint
                endpoint.invocation_future = Future()
                endpoint.logs = None
                self.process.begin_invocation(request_id)
                if FAST_PATH:
                    threading.Thread(
                        target=_invoke_inline, args=(self.port, payload, endpoint.invocation_future), daemon=True
                    ).start()
                else:
                    _post_json(f"http://127.0.0.1:{self.port}/invoke", payload)
                memory_mb = int(self.function_version.config.memory_size or 128)
                deadline = time.monotonic() + timeout_s
                while True:  # the function's timeout, and its memory size, enforced as AWS does
                    left = deadline - time.monotonic()
                    try:
                        result = endpoint.invocation_future.result(timeout=max(min(WATCH_S, left), 0.001))
                        break
                    except FutureTimeout:
                        if time.monotonic() >= deadline:
                            return self._timed_out(request_id, timeout_s)
                        used = tree_rss_mb(self.process.pid) if self.process.pid else 0.0
                        if used > memory_mb:
                            return self._out_of_memory(request_id, memory_mb, used)
                peak = peak_mb(self.process.pid) if self.process.pid else 0.0
                if peak > memory_mb:  # a spike between two readings: AWS would have ended it too
                    return self._out_of_memory(request_id, memory_mb, peak)
                result.logs = self.process.invocation_output(request_id)
                return result

        def _out_of_memory(self, request_id: str, memory_mb: int, used_mb: float):
            self._stopping = True
            self.process.kill()
            message = "Runtime exited with error: signal: killed"
            logs = (
                self.process.output_so_far()
                + f"Error: {message}\nRuntime.OutOfMemory\nEND RequestId: {request_id}\n"
                + f"REPORT RequestId: {request_id}\tMemory Size: {memory_mb} MB\tMax Memory Used: {used_mb:.0f} MB\t"
                + "Status: error\tError Type: Runtime.OutOfMemory\n"
            )
            LOG.info(
                "host-lambda %s: over %s MB (%.0f MB): killed",
                self.function_version.id.function_name,
                memory_mb,
                used_mb,
            )
            doc = {"errorType": "Runtime.OutOfMemory", "errorMessage": message}
            return InvocationResult(request_id, json.dumps(doc).encode(), is_error=True, logs=logs)

        def _timed_out(self, request_id: str, timeout_s: float):
            self._stopping = True
            self.process.kill()
            message = timeout_message(request_id, timeout_s)
            logs = (
                self.process.output_so_far()
                + f"{message}\nEND RequestId: {request_id}\n"
                + f"REPORT RequestId: {request_id}\tDuration: {timeout_s * 1000:.2f} ms\tStatus: timeout\n"
            )
            LOG.info("host-lambda %s: %s", self.function_version.id.function_name, message)
            doc = {"errorType": "Sandbox.Timedout", "errorMessage": message}
            return InvocationResult(request_id, json.dumps(doc).encode(), is_error=True, logs=logs)

        # addresses -------------------------------------------------------------------------------
        def get_address(self) -> str:
            return "127.0.0.1"

        def get_endpoint_from_executor(self) -> str:
            return "127.0.0.1"

        def get_runtime_endpoint(self) -> str:
            port = config.GATEWAY_LISTEN[0].port
            return f"http://127.0.0.1:{port}{self.executor_endpoint.get_endpoint_prefix()}"

        def get_logs(self) -> str:
            return self.process.all_output() if self.process else ""

        # versions --------------------------------------------------------------------------------
        @classmethod
        def prepare_version(cls, function_version) -> None:
            cfg = function_version.config
            check_supported(cfg.runtime, cfg.package_type)
            if cfg.code:
                cfg.code.prepare_for_execution()

        @classmethod
        def cleanup_version(cls, function_version) -> None:
            pass

        @classmethod
        def validate_environment(cls) -> bool:
            return True

    return HostRuntimeExecutor
