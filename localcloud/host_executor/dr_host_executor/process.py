"""One execution environment's host process: start, capture output per invocation, kill.

Standard library only, so it can be unit-tested without LocalStack.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from .worker import END_MARKER

WORKER_SCRIPT = Path(__file__).with_name("worker.py")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def timeout_message(request_id: str, timeout_s: float) -> str:
    """AWS's wording for a function that ran past its timeout."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + ".000Z"
    return f"{stamp} {request_id} Task timed out after {timeout_s:.2f} seconds"


def python_for(runtime: str) -> str:
    """The interpreter for a `pythonX.Y` runtime on this host."""
    if configured := os.environ.get("DR_LAMBDA_PYTHON"):
        return configured
    version = runtime.removeprefix("python")
    if configured := os.environ.get("LAMBDA_HOST_PYTHON_" + version.replace(".", "_")):
        return configured
    return shutil.which(f"python{version}") or sys.executable


def check_supported(runtime: str | None, package_type: str | None) -> None:
    """Refuse what a host subprocess cannot run, with a message the user sees on the function's state."""
    if package_type and package_type != "Zip":
        raise ValueError(
            f"the host Lambda executor runs zip-packaged Python functions only; this function is a "
            f"{package_type} package. Deploy it as a zip (CDK context target=local) or use Docker."
        )
    if not runtime or not runtime.startswith("python"):
        raise ValueError(f"the host Lambda executor runs Python runtimes only; this function's runtime is {runtime!r}.")


class WorkerProcess:
    """A handler process in its own process group, its stdout+stderr read line by line.

    Output between START and the end marker of a request is kept for that request, so the executor
    can hand LocalStack exactly one invocation's logs (which LocalStack then sends to CloudWatch Logs).
    """

    def __init__(
        self,
        python: str,
        env: dict[str, str],
        cwd: str,
        on_exit: Callable[[int | None], None] | None = None,
    ) -> None:
        self.python = python
        self.env = env
        self.cwd = cwd
        self.on_exit = on_exit
        self.proc: subprocess.Popen[bytes] | None = None
        self._lines: list[str] = []
        self._all: list[str] = []
        self._ended: dict[str, threading.Event] = {}
        self._cond = threading.Lock()
        self._pump_thread: threading.Thread | None = None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> None:
        # -P: do not put the worker's folder on sys.path, so its modules never shadow the function's.
        self.proc = subprocess.Popen(
            [self.python, "-P", str(WORKER_SCRIPT)],
            env=self.env,
            cwd=self.cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # own process group: a timeout kills the handler's children too
        )
        self._pump_thread = threading.Thread(target=self._pump, name=f"host-lambda-pump-{self.proc.pid}", daemon=True)
        self._pump_thread.start()

    def _pump(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for raw in iter(self.proc.stdout.readline, b""):
            line = raw.decode(errors="replace")
            if line.startswith(END_MARKER):
                request_id = line[len(END_MARKER) :].strip()
                with self._cond:
                    self._ended.setdefault(request_id, threading.Event()).set()
                continue
            with self._cond:
                self._lines.append(line)
                self._all.append(line)
                if len(self._all) > 5000:  # environment log kept for debugging; bounded
                    del self._all[:1000]
        code = self.proc.wait()
        if self.on_exit:
            self.on_exit(code)

    def begin_invocation(self, request_id: str) -> None:
        """Forget output from before this request (e.g. cold-start noise already reported)."""
        with self._cond:
            self._lines = []
            self._ended[request_id] = threading.Event()

    def invocation_output(self, request_id: str, wait_s: float = 2.0) -> str:
        """The output of one finished invocation, waiting briefly for its end marker."""
        with self._cond:
            event = self._ended.setdefault(request_id, threading.Event())
        event.wait(wait_s)
        with self._cond:
            self._ended.pop(request_id, None)
            out, self._lines = "".join(self._lines), []
        return out

    def output_so_far(self) -> str:
        with self._cond:
            out, self._lines = "".join(self._lines), []
        return out

    def all_output(self) -> str:
        with self._cond:
            return "".join(self._all)

    def kill(self, grace_s: float = 0.0) -> None:
        """End the process group; SIGTERM first when a grace period is given, then SIGKILL."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            if grace_s > 0:
                _signal_group(self.proc.pid, signal.SIGTERM)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.proc.wait(grace_s)
            _signal_group(self.proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(5)
        else:
            # The leader exited; its children may still be alive in the group.
            _signal_group(self.proc.pid, signal.SIGKILL)
        if self._pump_thread and self._pump_thread is not threading.current_thread():
            self._pump_thread.join(2)


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def tree_rss_mb(pid: int) -> float:
    """Resident memory of a process and all its descendants (Linux /proc; 0 where there is none)."""
    total_kb, stack, seen = 0, [pid], set()
    while stack:
        current = stack.pop()
        if current in seen:
            continue
        seen.add(current)
        try:
            with open(f"/proc/{current}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total_kb += int(line.split()[1])
                        break
            for task in os.listdir(f"/proc/{current}/task"):
                with open(f"/proc/{current}/task/{task}/children") as f:
                    stack += [int(c) for c in f.read().split()]
        except (OSError, ValueError):
            continue
    return total_kb / 1024


def peak_mb(pid: int) -> float:
    """A process's own peak resident memory (VmHWM), 0 where there is no /proc: catches a spike between two of
    the watchdog's readings."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except (OSError, ValueError):
        pass
    return 0.0
