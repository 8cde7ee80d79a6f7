"""At most N execution environments per function, each reused warm: a request beyond N waits for one to be free.

LocalStack 4.14 starts a new environment whenever every existing one is busy. With the host executor that is a new
Python process (hundreds of milliseconds of imports on a CPU the busy ones need), so 10 concurrent clients on
2 cores ran 16-22 requests/s with a p99 of seconds. Waiting for a warm environment is what a machine with few cores
can do best; AWS (which has the cores) scales out instead, and past its concurrency limit throttles at once, where
this waits up to the function's timeout and only then answers 429.

Standard library only, so it is unit-tested without LocalStack.
"""

from __future__ import annotations

import os
import threading
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager


def limit_from_env(environ=os.environ) -> int:
    """DR_LAMBDA_MAX_ENVIRONMENTS per function; 0 = unbounded (LocalStack's own behaviour); default: the cores this
    process may run on (at least 2)."""
    raw = environ.get("DR_LAMBDA_MAX_ENVIRONMENTS", "").strip()
    if not raw:
        return max(2, os.process_cpu_count() or 2)
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"DR_LAMBDA_MAX_ENVIRONMENTS must be a whole number (0 = unbounded), not {raw!r}") from None
    if value < 0:
        raise ValueError(f"DR_LAMBDA_MAX_ENVIRONMENTS must be 0 (unbounded) or more, not {value}")
    return value


class FairSlots:
    """N slots handed out first come, first served: a freed slot goes straight to the longest waiter, so a request
    that just arrived never overtakes one that waits (a plain semaphore lets it, which stretched the p99)."""

    def __init__(self, n: int) -> None:
        self._free = n
        self._waiters: deque[threading.Event] = deque()
        self._lock = threading.Lock()
        self.closed = False

    def acquire(self, timeout_s: float | None = None) -> tuple[bool, bool]:
        """(got a slot, had to wait)."""
        with self._lock:
            if self.closed:
                raise LookupError("its function version was stopped")
            if self._free > 0 and not self._waiters:
                self._free -= 1
                return True, False
            turn = threading.Event()
            self._waiters.append(turn)
        if turn.wait(timeout_s):
            if self.closed:
                raise LookupError("its function version was stopped while it waited")
            return True, True
        with self._lock:
            if turn.is_set():  # handed a slot between the timeout and this lock
                return True, True
            self._waiters.remove(turn)
            return False, True

    def waiting(self) -> int:
        with self._lock:
            return len(self._waiters)

    def close(self) -> None:
        """Refuse every waiter and newcomer (LookupError): the function version they wait for is gone."""
        with self._lock:
            self.closed = True
            waiters, self._waiters = list(self._waiters), deque()
        for turn in waiters:
            turn.set()

    def release(self) -> None:
        with self._lock:
            if self._waiters:
                self._waiters.popleft().set()  # the slot passes on without ever being free
            else:
                self._free += 1


class EnvironmentLimit:
    """FairSlots per function version; `slot` holds one for an invocation's whole run."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._slots: dict[str, FairSlots] = {}
        self._lock = threading.Lock()
        self.waited = 0  # invocations that found every slot taken, since the start

    def close(self, key: str) -> None:
        """The function version `key` is stopped: its waiters are refused and its slots forgotten."""
        with self._lock:
            slots = self._slots.pop(key, None)
        if slots is not None:
            slots.close()

    def waiting(self, key: str) -> int:
        """Invocations of this function waiting for a slot now."""
        with self._lock:
            slots = self._slots.get(key)
        return slots.waiting() if slots else 0

    @contextmanager
    def slot(self, key: str, timeout_s: float | None = None) -> Iterator[None]:
        """Wait (at most timeout_s) for one of the key's slots; TimeoutError when none came free in time,
        LookupError when the key was closed (its version stopped)."""
        if self.limit <= 0:
            yield
            return
        with self._lock:
            slots = self._slots.setdefault(key, FairSlots(self.limit))
        got, waited = slots.acquire(timeout_s)
        if waited:
            with self._lock:
                self.waited += 1
        if not got:
            raise TimeoutError(f"no execution environment came free within {timeout_s:.0f} s")
        try:
            yield
        finally:
            slots.release()
