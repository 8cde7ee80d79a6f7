"""The host executor's hooks into LocalStack, against stand-ins for the LocalStack classes they patch (LocalStack
lives in its own venv): the bound's 429 after the function's timeout, a stopped version refusing its waiters, and
the inline invoke's answers (a result; a worker that closes without one is an exit error, not a timeout)."""

from __future__ import annotations

import collections
import contextlib
import enum
import importlib
import socket
import sys
import threading
import time
import types
from concurrent.futures import Future
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


class ServiceException(Exception):
    pass


class TooManyRequestsException(Exception):
    def __init__(self, message: str, Reason: str | None = None, Type: str | None = None) -> None:
        super().__init__(message)
        self.Reason = Reason


@dataclass
class InvocationResult:
    request_id: str
    payload: bytes | None
    is_error: bool
    logs: str | None
    executed_version: str | None = None


class AssignmentService:
    def __init__(self) -> None:
        self.started: list[str] = []
        self.stopped: list[str] = []

    @contextlib.contextmanager
    def get_environment(self, version_manager_id, function_version, provisioning_type):
        self.started.append(version_manager_id)
        yield f"environment of {version_manager_id}"

    def stop_environments_for_version(self, version_manager_id: str) -> None:
        self.stopped.append(version_manager_id)


# LocalStack's package skeleton; each fixture adds the modules whose classes it stands in for
PACKAGES = (
    "localstack",
    "localstack.aws",
    "localstack.services",
    "localstack.services.lambda_",
    "localstack.services.lambda_.invocation",
)


def install_stand_ins(monkeypatch, stand_ins: dict[str, dict]) -> None:
    """Modules named as LocalStack's, holding the stand-ins, in sys.modules for the test's length."""
    for name, attributes in stand_ins.items():
        module = types.ModuleType(name)
        module.__dict__.update(attributes)
        monkeypatch.setitem(sys.modules, name, module)


@pytest.fixture
def plugin(monkeypatch):
    """dr_host_executor.plugin imported against the stand-ins, its bound (1 per function) installed."""
    stand_ins = {
        **{package: {} for package in PACKAGES},
        "localstack.aws.api": {"ServiceException": ServiceException},
        "localstack.aws.api.lambda_": {"TooManyRequestsException": TooManyRequestsException},
        "localstack.services.lambda_.invocation.plugins": {"RuntimeExecutorPlugin": object},
        "localstack.services.lambda_.invocation.assignment": {"AssignmentService": AssignmentService},
        "localstack.services.lambda_.invocation.lambda_models": {"InvocationResult": InvocationResult},
    }
    install_stand_ins(monkeypatch, stand_ins)
    monkeypatch.delitem(sys.modules, "dr_host_executor.plugin", raising=False)
    monkeypatch.setenv("DR_LAMBDA_MAX_ENVIRONMENTS", "1")
    for method in ("get_environment", "stop_environments_for_version"):
        monkeypatch.setattr(AssignmentService, method, AssignmentService.__dict__[method])
    module = importlib.import_module("dr_host_executor.plugin")
    monkeypatch.setitem(sys.modules, "dr_host_executor.plugin", module)  # removed again after the test
    module._bound_environments()
    return module


def version(timeout_s: float):
    return types.SimpleNamespace(config=types.SimpleNamespace(timeout=timeout_s))


def test_a_request_that_waits_past_the_functions_timeout_is_throttled(plugin):
    service = AssignmentService()
    with service.get_environment("fn-v1", version(5), "on-demand") as environment:
        assert environment == "environment of fn-v1"
        with pytest.raises(TooManyRequestsException, match="Rate Exceeded") as refused:  # noqa: SIM117
            with service.get_environment("fn-v1", version(0.05), "on-demand"):
                pass
    assert refused.value.Reason == "ConcurrentInvocationLimitExceeded"
    assert service.started == ["fn-v1"]  # the refused request never started an environment
    with service.get_environment("fn-v1", version(0.05), "on-demand"):  # its slot is free again
        pass


def test_a_stopped_version_refuses_the_requests_waiting_for_it(plugin):
    service = AssignmentService()
    outcome: list[BaseException] = []

    def wait() -> None:
        try:
            with service.get_environment("fn-v1", version(10), "on-demand"):
                pass
        except BaseException as exc:
            outcome.append(exc)

    with service.get_environment("fn-v1", version(5), "on-demand"):
        waiter = threading.Thread(target=wait)
        waiter.start()
        waiter.join(0.2)  # waiting for the slot, or about to: refused either way once the version stops
        service.stop_environments_for_version("fn-v1")  # the function was updated meanwhile
        waiter.join(5)
    assert len(outcome) == 1 and isinstance(outcome[0], ServiceException)
    assert "shutting down" in str(outcome[0])
    assert service.stopped == ["fn-v1"] and service.started == ["fn-v1"]  # no environment of the old code


def _serve(handler_class) -> ThreadingHTTPServer:
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler_class)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def test_an_inline_invoke_resolves_the_invocation_with_the_workers_answer(plugin):
    class Answer(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_POST(self):
            self.rfile.read(int(self.headers["Content-Length"]))
            body = b'{"ok": true}'
            self.send_response(200)
            self.send_header("X-DR-Outcome", "response")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = _serve(Answer)
    future: Future = Future()
    try:
        plugin._invoke_inline(server.server_port, {"invoke-id": "r-1"}, future)
    finally:
        server.shutdown()
    result = future.result(1)
    assert (result.request_id, result.payload, result.is_error) == ("r-1", b'{"ok": true}', False)


def test_a_worker_that_closes_without_answering_is_an_exit_error_not_a_timeout(plugin):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)

    def close_without_answer() -> None:
        connection, _ = listener.accept()
        connection.recv(65536)
        connection.close()

    threading.Thread(target=close_without_answer, daemon=True).start()
    future: Future = Future()
    try:
        plugin._invoke_inline(listener.getsockname()[1], {"invoke-id": "r-2"}, future)
    finally:
        listener.close()
    result = future.result(1)
    assert result.is_error and b"Runtime.ExitError" in result.payload


def test_an_invocation_resolved_elsewhere_first_keeps_that_result(plugin):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    threading.Thread(target=lambda: listener.accept()[0].close(), daemon=True).start()
    future: Future = Future()
    future.set_result("timed out (the executor's own answer)")
    plugin._invoke_inline(listener.getsockname()[1], {"invoke-id": "r-3"}, future)
    listener.close()
    assert future.result() == "timed out (the executor's own answer)"


def test_cloudformation_re_reads_a_resource_being_created_at_the_local_pace():
    """Each of the stack's functions is Pending for milliseconds, yet LocalStack re-read it after a full second."""
    from dr_host_executor.cfn_patches import _poll_every, poll_interval

    class Executor:  # LocalStack's ResourceProviderExecutor.deploy_loop signature
        def deploy_loop(self, resource_provider, resource, raw_payload, max_timeout=300, sleep_time: float = 1):
            return sleep_time, max_timeout

    _poll_every(Executor, 0.05)
    assert Executor().deploy_loop("provider", {}, {}) == (0.05, 300)
    assert Executor().deploy_loop("provider", {}, {}, sleep_time=2) == (2, 300)  # a caller's own wait stands
    assert Executor().deploy_loop("provider", {}, {}, 60, 2) == (2, 60)  # given by position too
    _poll_every(Executor, 0.5)  # installed once: a second hook run changes nothing
    assert Executor().deploy_loop("provider", {}, {}) == (0.05, 300)

    assert poll_interval({}) == 0.05 and poll_interval({"DR_CFN_POLL_S": "1"}) == 1.0
    for bad in ("soon", "-1", "0", "1e-9", "inf", "nan", "60"):
        assert poll_interval({"DR_CFN_POLL_S": bad}) == 0.05, bad


def test_the_lambda_providers_waiters_read_at_the_local_pace_within_the_same_timeout():
    """LocalStack's Lambda resource provider waits with botocore's function_updated_v2 after each update (1 s apart):
    those waiters, and only those, read every 0.05 s, with as many more attempts as keep their timeout."""
    from types import SimpleNamespace

    from botocore.waiter import Waiter
    from dr_host_executor.cfn_patches import _quicker_lambda_waiters

    class Stand(Waiter):  # botocore's Waiter with its own wait swapped for a recorder
        def __init__(self, name: str) -> None:
            self.name, self.config = name, SimpleNamespace(delay=1, max_attempts=300)

        def wait(self, **kwargs):
            return kwargs.get("WaiterConfig")

    _quicker_lambda_waiters(Stand, 0.05)
    assert Stand("FunctionUpdatedV2").wait(FunctionName="f") == {"Delay": 0.05, "MaxAttempts": 6000}
    assert Stand("FunctionActiveV2").wait(FunctionName="f", WaiterConfig={"MaxAttempts": 10}) == {
        "Delay": 0.05,
        "MaxAttempts": 200,
    }
    assert Stand("FunctionUpdatedV2").wait(WaiterConfig={"Delay": 3}) == {"Delay": 3}  # a caller's own pace stands
    assert Stand("BucketExists").wait(Bucket="b") is None  # other services' waiters are untouched
    slow = Stand("FunctionUpdatedV2")
    slow.config = SimpleNamespace(delay=0.01, max_attempts=5)
    assert slow.wait() is None  # never slower than botocore's own pace
    _quicker_lambda_waiters(Stand, 0.5)  # installed once
    assert Stand("FunctionUpdatedV2").wait()["Delay"] == 0.05


def test_a_real_lambda_clients_waiter_goes_through_the_patch(monkeypatch):
    """botocore builds each waiter's class at run time, whose wait calls Waiter.wait: patching that one reaches them."""
    import boto3
    import botocore.waiter
    from botocore.stub import Stubber
    from dr_host_executor.cfn_patches import _quicker_lambda_waiters

    monkeypatch.setattr(botocore.waiter.Waiter, "wait", botocore.waiter.Waiter.wait)  # put back after the test
    slept = []
    monkeypatch.setattr(botocore.waiter.time, "sleep", slept.append)
    _quicker_lambda_waiters(botocore.waiter.Waiter, 0.05)
    client = boto3.client("lambda", region_name="us-east-1", aws_access_key_id="a", aws_secret_access_key="b")
    with Stubber(client) as stub:
        for status in ("InProgress", "InProgress", "Successful"):
            stub.add_response("get_function", {"Configuration": {"LastUpdateStatus": status}}, {"FunctionName": "f"})
        client.get_waiter("function_updated_v2").wait(FunctionName="f")
    assert slept == [0.05, 0.05]


def _localstack_site():
    """The site-packages of the pinned LocalStack the install put in place (its venv follows DR_STATE_DIR)."""
    from localcloud.settings import LocalCloudSettings

    (site,) = LocalCloudSettings().localstack_venv.glob("lib/python3*/site-packages")
    return site


def test_localstacks_lambda_provider_waits_with_the_patched_waiter():
    """The waiter patch matters because the pinned LocalStack's Lambda provider waits with function_updated_v2 after
    updates, through botocore's Waiter.wait (read from the installed sources)."""

    site = _localstack_site()
    provider = (site / "localstack/services/lambda_/resource_providers/aws_lambda_function.py").read_text()
    assert 'get_waiter("function_updated_v2").wait(' in provider
    assert "Waiter.wait(self, **kwargs)" in (site / "botocore" / "waiter.py").read_text()


def test_the_patched_signature_is_localstacks_own():
    """The stand-in above mirrors LocalStack's deploy_loop, read from the pinned LocalStack the install put in place."""
    import ast

    source = _localstack_site() / "localstack" / "services" / "cloudformation" / "resource_provider.py"
    (loop,) = [n for n in ast.walk(ast.parse(source.read_text())) if getattr(n, "name", None) == "deploy_loop"]
    names = [a.arg for a in loop.args.args]
    assert names == ["self", "resource_provider", "resource", "raw_payload", "max_timeout", "sleep_time"]
    assert ast.literal_eval(loop.args.defaults[-1]) == 1


def test_a_stopped_step_functions_program_stays_stopped_whatever_errs_after():
    """LocalStack's Map state raises AttributeError on its own MapIterationAborted after a stop, and the program's
    catch-all made the stopped execution FAILED: with the patch set_error leaves a stopped program (and only that)."""
    import threading

    from dr_host_executor.sfn_patches import _stopped_stays_stopped

    class Running:
        pass

    class Stopped:
        pass

    class Errored:
        def __init__(self, error) -> None:
            self.error = error

    class Env:  # LocalStack's Environment: set_stop and set_error under an RLock, the state in _program_state
        def __init__(self) -> None:
            self._state_mutex, self._program_state = threading.RLock(), Running()

        def set_stop(self) -> None:
            with self._state_mutex:
                self._program_state = Stopped()

        def set_error(self, error) -> None:
            with self._state_mutex:
                self._program_state = Errored(error)

    _stopped_stays_stopped(Env, Stopped)
    running, stopped = Env(), Env()
    stopped.set_stop()
    running.set_error({"error": "States.TaskFailed"})
    stopped.set_error(error={"error": "States.Runtime", "cause": "AttributeError(...)"})  # by keyword, as LocalStack
    assert isinstance(running._program_state, Errored) and running._program_state.error["error"] == "States.TaskFailed"
    assert isinstance(stopped._program_state, Stopped)
    wrapped = Env.set_error
    _stopped_stays_stopped(Env, Stopped)  # a second hook run wraps nothing again
    assert Env.set_error is wrapped


def test_the_step_functions_patch_fits_the_pinned_localstack():
    """What the stand-in above mirrors, read from the pinned LocalStack: set_error(self, error) and set_stop under
    an RLock, ProgramStopped in program_state; and the Map's worker still handing the stop's error string over as
    event details (when a LocalStack upgrade passes a dict there, the patch may no longer be needed)."""
    import ast

    sfn = _localstack_site() / "localstack" / "services" / "stepfunctions" / "asl"
    environment = (sfn / "eval" / "environment.py").read_text()
    assert "self._state_mutex = threading.RLock()" in environment
    functions = {n.name: n for n in ast.walk(ast.parse(environment)) if isinstance(n, ast.FunctionDef)}
    assert [a.arg for a in functions["set_error"].args.args] == ["self", "error"]
    assert "ProgramStopped(" in ast.unparse(functions["set_stop"])
    assert "class ProgramStopped" in (sfn / "eval" / "program_state.py").read_text()
    worker = (sfn / "component/state/state_execution/state_map/iteration/iteration_worker.py").read_text()
    stopped = worker[worker.index("elif isinstance(end_program_state, ProgramStopped):") :]
    stopped = stopped[: stopped.index("# Otherwise")]  # the stop's branch only: the error's has the same line
    assert "executionFailedEventDetails=end_program_state.error" in stopped


def test_the_local_cloud_installs_the_step_functions_patch_at_start():
    """The hook is declared where LocalStack's plugin manager looks (the executor's entry points, read by the
    install) and names a function that exists."""
    import importlib
    import tomllib

    from localcloud.install import EXECUTOR_DIR

    hooks = tomllib.loads((EXECUTOR_DIR / "pyproject.toml").read_text())["project"]["entry-points"]
    target = hooks["localstack.hooks.on_infra_start"]["dr_stepfunctions_patches"]
    module, _, name = target.partition(":")
    assert callable(getattr(importlib.import_module(module), name))


def test_the_local_cloud_passes_the_cloudformation_pace(tmp_path, monkeypatch):
    from pydantic import ValidationError

    from localcloud.runtime import localstack_env
    from localcloud.settings import LocalCloudSettings

    monkeypatch.delenv("DR_CFN_POLL_S", raising=False)
    assert localstack_env(LocalCloudSettings(state_dir=tmp_path))["DR_CFN_POLL_S"] == "0.05"
    assert localstack_env(LocalCloudSettings(state_dir=tmp_path, cfn_poll_s=1))["DR_CFN_POLL_S"] == "1.0"
    for bad in (0, 6):
        with pytest.raises(ValidationError, match="cfn_poll_s"):
            LocalCloudSettings(state_dir=tmp_path, cfn_poll_s=bad)


def test_the_local_cloud_passes_the_prewarm_setting(tmp_path, monkeypatch):
    from localcloud.runtime import localstack_env
    from localcloud.settings import LocalCloudSettings

    monkeypatch.delenv("DR_LAMBDA_PREWARM", raising=False)
    assert localstack_env(LocalCloudSettings(state_dir=tmp_path))["DR_LAMBDA_PREWARM"] == "1"
    assert localstack_env(LocalCloudSettings(state_dir=tmp_path, lambda_prewarm=False))["DR_LAMBDA_PREWARM"] == "0"
    monkeypatch.setenv("DR_LAMBDA_PREWARM", "false")  # the CLI's environment, as `local up` reads it
    assert localstack_env(LocalCloudSettings(state_dir=tmp_path))["DR_LAMBDA_PREWARM"] == "0"


def test_the_local_cloud_passes_the_prewarm_hold(tmp_path, monkeypatch):
    from localcloud.runtime import localstack_env
    from localcloud.settings import LocalCloudSettings

    monkeypatch.delenv("DR_LAMBDA_PREWARM_HOLD_S", raising=False)
    assert localstack_env(LocalCloudSettings(state_dir=tmp_path))["DR_LAMBDA_PREWARM_HOLD_S"] == "30.0"
    monkeypatch.setenv("DR_LAMBDA_PREWARM_HOLD_S", "0")
    assert localstack_env(LocalCloudSettings(state_dir=tmp_path))["DR_LAMBDA_PREWARM_HOLD_S"] == "0.0"
    monkeypatch.setenv("DR_LAMBDA_PREWARM_HOLD_S", "-1")
    with pytest.raises(ValueError, match="lambda_prewarm_hold_s"):  # pydantic's ValidationError
        LocalCloudSettings(state_dir=tmp_path)


# --- prewarm: a deployed version's environment started before its first invocation ------------------------------


class State(enum.Enum):
    Active = "Active"
    Failed = "Failed"


class Environment:
    def __init__(self, number: int) -> None:
        self.id = f"env-{number}"
        self.stopped = False
        self.keepalive_timer = None

    def keepalive_passed(self) -> None:
        pass

    def stop(self) -> None:
        self.stopped = True


class PoolService:
    """AssignmentService's pool as prewarming uses it: start_environment, environments, get/stop."""

    def __init__(self) -> None:
        self.environments: dict[str, dict[str, Environment]] = collections.defaultdict(dict)
        self.started: list[Environment] = []
        self.entered = threading.Event()
        self.gate = threading.Event()
        self.gate.set()

    def start_environment(self, key, version) -> Environment:
        self.entered.set()
        assert self.gate.wait(10)
        environment = Environment(len(self.started))
        self.started.append(environment)
        return environment

    @contextlib.contextmanager
    def get_environment(self, key, version, provisioning_type):
        yield next(iter(self.environments[key].values()), None)  # LocalStack reserves a ready one, else starts one

    def stop_environments_for_version(self, key: str) -> None:
        for environment in self.environments.pop(key, {}).values():
            environment.stop()


class VersionManager:
    def __init__(self, service: PoolService, key: str, state: State = State.Active, capacity=None) -> None:
        self.assignment_service = service
        self.id = key
        self.state = state
        self.shutdown_event = threading.Event()
        self.function_version = types.SimpleNamespace(config=types.SimpleNamespace(capacity_provider_config=capacity))

    def start(self):
        return types.SimpleNamespace(state=self.state)


@pytest.fixture
def prewarming(monkeypatch):
    """dr_host_executor.plugin imported against the stand-ins, its prewarm hooks installed."""
    stand_ins = {
        **{package: {} for package in PACKAGES},
        "localstack.config": {"LAMBDA_RUNTIME_ENVIRONMENT_TIMEOUT": 5, "LAMBDA_KEEPALIVE_MS": 600_000},
        "localstack.aws.api": {"ServiceException": ServiceException},
        "localstack.aws.api.lambda_": {"State": State, "TooManyRequestsException": TooManyRequestsException},
        "localstack.services.lambda_.invocation.plugins": {"RuntimeExecutorPlugin": object},
        "localstack.services.lambda_.invocation.assignment": {"AssignmentService": PoolService},
        "localstack.services.lambda_.invocation.version_manager": {"LambdaVersionManager": VersionManager},
    }
    install_stand_ins(monkeypatch, stand_ins)
    sys.modules["localstack"].config = sys.modules["localstack.config"]
    monkeypatch.delitem(sys.modules, "dr_host_executor.plugin", raising=False)
    monkeypatch.setattr(VersionManager, "start", VersionManager.__dict__["start"])
    for method in ("get_environment", "stop_environments_for_version"):
        monkeypatch.setattr(PoolService, method, PoolService.__dict__[method])
    module = importlib.import_module("dr_host_executor.plugin")
    monkeypatch.setitem(sys.modules, "dr_host_executor.plugin", module)
    module._prewarm_environments()
    return module


def wait_until(condition, seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_a_deployed_version_gets_an_environment_before_its_first_invocation(prewarming):
    service = PoolService()
    VersionManager(service, "fn-v1").start()
    wait_until(lambda: bool(service.environments["fn-v1"]))
    environment = service.environments["fn-v1"]["env-0"]
    assert environment.keepalive_timer is not None and environment.keepalive_timer.is_alive()  # stopped when unused
    environment.keepalive_timer.cancel()
    with service.get_environment("fn-v1", None, "on-demand") as used:
        assert used is environment


def test_an_invocation_during_the_start_waits_and_gets_the_started_environment(prewarming):
    service = PoolService()
    service.gate.clear()
    VersionManager(service, "fn-v1").start()
    assert service.entered.wait(5)  # the start is running (not queued)
    got: list = []

    def invoke() -> None:
        with service.get_environment("fn-v1", None, "on-demand") as environment:
            got.append(environment)

    caller = threading.Thread(target=invoke)
    caller.start()
    caller.join(0.3)
    assert caller.is_alive() and not got  # waiting for the start, not starting a second environment
    service.gate.set()
    caller.join(5)
    assert got and got[0] is service.started[0]
    got[0].keepalive_timer.cancel()


def test_a_version_stopped_during_its_start_never_keeps_the_environment(prewarming):
    service = PoolService()
    service.gate.clear()
    VersionManager(service, "fn-v1").start()
    assert service.entered.wait(5)
    service.stop_environments_for_version("fn-v1")  # updated meanwhile
    service.gate.set()
    wait_until(lambda: prewarming.PREWARM.pending() == 0)
    assert service.started[0].stopped and not service.environments.get("fn-v1")


def test_versions_that_are_not_active_or_on_capacity_providers_are_not_prewarmed(prewarming):
    service = PoolService()
    VersionManager(service, "fn-failed", state=State.Failed).start()
    VersionManager(service, "fn-managed", capacity={"CapacityProviderArn": "arn:..."}).start()
    assert service.started == [] and prewarming.PREWARM.pending() == 0


def test_a_version_stopped_before_its_start_was_queued_never_keeps_an_environment(prewarming):
    """LocalStack sets the version's shutdown event before it stops its environments: a start that finishes for a
    version already stopped is discarded, never adopted into the pool."""
    service = PoolService()
    service.gate.clear()
    manager = VersionManager(service, "fn-v1")
    manager.start()
    assert service.entered.wait(5)
    manager.shutdown_event.set()  # stopped (its stop ran before the prewarm knew of the version)
    service.gate.set()
    wait_until(lambda: prewarming.PREWARM.pending() == 0)
    assert service.started[0].stopped and not service.environments.get("fn-v1")
    stopped = VersionManager(service, "fn-v2")
    stopped.shutdown_event.set()
    stopped.start()
    assert len(service.started) == 1  # nothing queued for a version already stopped


def test_the_hooks_install_once_however_often_localstack_loads_the_executor(prewarming):
    """LocalStack loads the executor plugin (`_executor_class`) again and again; each hook must wrap exactly once."""
    layers = PoolService.get_environment, PoolService.stop_environments_for_version, VersionManager.start
    prewarming._bound_environments()  # as the next load does: the bound first, then the prewarm
    prewarming._prewarm_environments()
    assert (PoolService.get_environment, PoolService.stop_environments_for_version, VersionManager.start) == layers
