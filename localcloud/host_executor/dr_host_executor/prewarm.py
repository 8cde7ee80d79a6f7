"""One execution environment per function version started as soon as the version is deployed, in the background.

A function's first invocation pays its cold start: a new host process imports the handler and what it needs. For
the training steps that was most of a first run: the state machine took 45 s on its first run after a deploy and
23 s on the second, with the same work (2 cores, by hand, 2026-12-01). A deploy keeps one core busy (LocalStack's
CloudFormation), so the other starts the environments meanwhile, one at a time, and the first invocation finds one
warm. AWS keeps nothing warm before a first invocation unless asked to (provisioned concurrency); this is the local
cloud's shortcut, off with DR_LAMBDA_PREWARM=0.

Each start waits for an idle core first (Linux: /proc/stat; at most 30 s, then it goes anyway). Right after a deploy
the starts still queued took a core from the training's Train invocations: the state machine took 54-55 s in four
runs, against 47-52 s in six when each start waited for an idle core (by hand, alternating, 2 cores, 2026-12-01),
and 41-43 s once every start was done before the training began. A start already running finishes.

An invocation that arrives while its function's environment is starting waits for it (rather than starting a
second one); one that arrives while it is still queued takes it off the queue and cold-starts as before. A version
stopped meanwhile (updated, deleted) loses its queued start, and an environment that finishes starting for it is
stopped, never used.

Standard library only, so it is unit-tested without LocalStack.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

LOG = logging.getLogger(__name__)


def enabled_from_env(environ=os.environ) -> bool:
    """DR_LAMBDA_PREWARM: on unless 0/false/no/off."""
    raw = environ.get("DR_LAMBDA_PREWARM", "1").strip().lower()
    if raw in ("1", "true", "yes", "on", ""):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"DR_LAMBDA_PREWARM must be 1 or 0 (on or off), not {raw!r}")


class IdleCores:
    """The machine's idle cores since the previous call, from /proc/stat (Linux); None on the first call or where
    the file cannot be read (then nothing waits)."""

    def __init__(self, path: str = "/proc/stat", cores: int | None = None) -> None:
        self.path = path
        self.cores = cores or os.cpu_count() or 1
        self._last: tuple[int, int] | None = None

    def _read(self) -> tuple[int, int] | None:
        try:
            with open(self.path) as f:
                ticks = [int(v) for v in f.readline().split()[1:]]
        except (OSError, ValueError):
            return None
        if len(ticks) < 5:
            return None
        return ticks[3] + ticks[4], sum(ticks)  # idle + iowait, all

    def __call__(self) -> float | None:
        now, last = self._read(), self._last
        self._last = now
        if now is None or last is None or now[1] <= last[1]:
            return None
        return self.cores * (now[0] - last[0]) / (now[1] - last[1])


@dataclass
class _Start:
    key: str
    start: Callable[[], Any]
    adopt: Callable[[Any], None]
    discard: Callable[[Any], None]
    state: str = "queued"  # queued → running → done; or cancelled
    closed: bool = False
    done: threading.Event = field(default_factory=threading.Event)


class Prewarmer:
    """Environment starts queued per key (a function version), run one at a time by one background thread; with
    `idle_cores`, each waits (polling every `poll_s`, at most `max_hold_s`) until at least `min_idle` cores are idle."""

    def __init__(
        self,
        idle_cores: Callable[[], float | None] | None = None,
        min_idle: float = 0.5,
        poll_s: float = 0.25,
        max_hold_s: float = 30.0,
    ) -> None:
        self._idle_cores = idle_cores
        self.min_idle = min_idle
        self.poll_s = poll_s
        self.max_hold_s = max_hold_s
        self.held_s = 0.0  # time starts waited for an idle core, since the start
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._queue: deque[_Start] = deque()
        self._jobs: dict[str, _Start] = {}
        self._thread: threading.Thread | None = None
        self._running: _Start | None = None
        self.started = 0  # environments adopted, since the start
        self.claimed_queued = 0  # invocations that found theirs still queued and took it off

    def schedule(
        self,
        key: str,
        start: Callable[[], Any],
        adopt: Callable[[Any], None],
        discard: Callable[[Any], None],
    ) -> None:
        """Queue `start()` for key; its result goes to `adopt` unless the key was closed meanwhile (`discard`)."""
        with self._lock:
            previous = self._jobs.get(key)
            if previous is not None and previous.state in ("queued", "running"):
                return  # one per version is all a first invocation needs
            job = _Start(key, start, adopt, discard)
            self._jobs[key] = job
            self._queue.append(job)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="host-lambda-prewarm", daemon=True)
                self._thread.start()
            self._wake.notify()

    def claim(self, key: str, timeout_s: float | None = None) -> str:
        """Before an invocation takes an environment: 'none' (nothing pending), 'cancelled' (it was still queued:
        taken off, the invocation starts its own), 'waited' (it was starting: now adopted or failed)."""
        with self._lock:
            job = self._jobs.get(key)
            if job is None or job.state in ("done", "cancelled"):
                return "none"
            if job.state == "queued":
                job.state = "cancelled"
                self._queue.remove(job)
                del self._jobs[key]
                self.claimed_queued += 1
                job.done.set()
                return "cancelled"
        job.done.wait(timeout_s)
        return "waited"

    def close(self, key: str) -> None:
        """The version is stopped: its queued start is dropped, a running one's environment will be discarded."""
        with self._lock:
            job = self._jobs.pop(key, None)
            if job is None:
                return
            job.closed = True
            if job.state == "queued":
                job.state = "cancelled"
                self._queue.remove(job)
                job.done.set()

    def pending(self) -> int:
        with self._lock:
            return len(self._queue) + (self._running is not None)

    def _wait_for_an_idle_core(self) -> None:
        if self._idle_cores is None:
            return
        started = time.monotonic()
        self._idle_cores()  # the window starts now
        while time.monotonic() - started < self.max_hold_s:
            time.sleep(self.poll_s)
            idle = self._idle_cores()
            with self._lock:
                if not self._queue:  # taken off by invocations meanwhile
                    break
            if idle is None or idle >= self.min_idle:
                break
        self.held_s += time.monotonic() - started

    def _run(self) -> None:
        while True:
            with self._lock:
                while not self._queue:
                    self._wake.wait()
            self._wait_for_an_idle_core()
            with self._lock:
                if not self._queue:
                    continue
                job = self._queue.popleft()
                job.state = "running"
                self._running = job
            try:
                self._finish(job)
            finally:
                with self._lock:
                    job.state = "done"
                    self._running = None
                    if self._jobs.get(job.key) is job:
                        del self._jobs[job.key]
                job.done.set()

    def _finish(self, job: _Start) -> None:
        try:
            result = job.start()
        except Exception as exc:  # the environment reports its own failure; a first invocation starts anew
            LOG.info("host-lambda: prewarming %s failed: %s", job.key, exc)
            return
        with self._lock:
            keep = not job.closed
            if keep:
                try:
                    job.adopt(result)  # before anyone waiting is told: they must find it
                    self.started += 1
                except Exception as exc:
                    LOG.info("host-lambda: prewarmed environment of %s not kept: %s", job.key, exc)
                    keep = False
        if not keep:
            try:
                job.discard(result)
            except Exception as exc:
                LOG.debug("host-lambda: discarding the prewarmed environment of %s: %s", job.key, exc)
