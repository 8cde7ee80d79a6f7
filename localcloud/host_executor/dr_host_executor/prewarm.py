"""One execution environment per function version started as soon as the version is deployed, in the background.

A function's first invocation pays its cold start: a new host process imports the handler and what it needs. For
the training steps that was most of a first run: the state machine took 45 s on its first run after a deploy and
23 s on the second, with the same work (2 cores, by hand, 2026-12-01). A deploy keeps one core busy (LocalStack's
CloudFormation), so the other starts the environments meanwhile, one at a time, and the first invocation finds one
warm. AWS keeps nothing warm before a first invocation unless asked to (provisioned concurrency); this is the local
cloud's shortcut, off with DR_LAMBDA_PREWARM=0.

Each start first waits until at least half a core is idle (Linux: /proc/stat, over the cores this process may run
on; at most DR_LAMBDA_PREWARM_HOLD_S=30 s per start, then it goes anyway; 0 = no wait). Right after a deploy
the starts still queued took a core from the training's Train invocations: the state machine took 51 and 56 s with
the wait against 54 and 60 s without (by hand, alternating, 2 cores, 2026-12-01; README, "The development loop"),
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


def hold_from_env(environ=os.environ) -> float:
    """DR_LAMBDA_PREWARM_HOLD_S: how long a start may wait for an idle core (default 30; 0 = it never waits)."""
    raw = environ.get("DR_LAMBDA_PREWARM_HOLD_S", "").strip()
    if not raw:
        return 30.0
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"DR_LAMBDA_PREWARM_HOLD_S must be a number of seconds (0 = no wait), not {raw!r}") from None
    if not 0 <= value <= 600:
        raise ValueError(f"DR_LAMBDA_PREWARM_HOLD_S must be between 0 and 600 seconds, not {value}")
    return value


class IdleCores:
    """Idle cores among those this process may run on (its CPU affinity), since the previous call, from /proc/stat
    (Linux); None on the first call or where the file cannot be read (then nothing waits). A cgroup's CPU quota
    (`docker --cpus`) is not seen: there the reading is the pinned or the machine's cores."""

    def __init__(self, path: str = "/proc/stat", cpus: set[int] | None = None) -> None:
        self.path = path
        if cpus is None and hasattr(os, "sched_getaffinity"):
            cpus = set(os.sched_getaffinity(0))
        self.cpus = cpus  # None: every core in the file
        self._last: tuple[int, int, int] | None = None

    def _read(self) -> tuple[int, int, int] | None:
        """(idle + iowait ticks, all ticks, cores) summed over the cores' own lines."""
        idle = total = cores = 0
        try:
            with open(self.path) as f:
                for line in f:
                    name, _, rest = line.partition(" ")
                    if not (name.startswith("cpu") and name[3:].isdigit()):
                        continue
                    if self.cpus is not None and int(name[3:]) not in self.cpus:
                        continue
                    # user nice system idle iowait irq softirq steal (guest time is already in user and nice)
                    ticks = [int(v) for v in rest.split()[:8]]
                    if len(ticks) < 5:
                        return None
                    idle += ticks[3] + ticks[4]
                    total += sum(ticks)
                    cores += 1
        except (OSError, ValueError):
            return None
        return (idle, total, cores) if cores else None

    def __call__(self) -> float | None:
        now, last = self._read(), self._last
        self._last = now
        if now is None or last is None or now[2] != last[2] or now[1] <= last[1]:
            return None
        return now[2] * (now[0] - last[0]) / (now[1] - last[1])


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

    def _reading(self) -> float | None:
        try:
            return self._idle_cores()
        except Exception as exc:  # a broken reading must not stop the queue: it then waits for nothing
            LOG.info("host-lambda: reading the idle cores failed (%s); starts no longer wait for one", exc)
            self._idle_cores = None
            return None

    def _take_next(self) -> _Start | None:
        """The queue's next start, marked running, once enough cores are idle (at most max_hold_s); None if the
        queue emptied meanwhile (its starts were taken off by their invocations or stopped)."""
        started = time.monotonic()
        hold = self._idle_cores is not None and self.max_hold_s > 0
        if hold:
            self._reading()  # the window starts now
        try:
            while True:
                idle = None
                if hold:
                    time.sleep(self.poll_s)
                    idle = self._reading()
                with self._lock:
                    if not self._queue:
                        return None
                    go = idle is None or idle >= self.min_idle
                    if not go and time.monotonic() - started >= self.max_hold_s:
                        LOG.info(
                            "host-lambda: no idle core for %.0f s; starting %s anyway",
                            self.max_hold_s,
                            self._queue[0].key,
                        )
                        go = True
                    if go:  # taken under the same lock that saw the queue: nothing can slip in without a hold
                        job = self._queue.popleft()
                        job.state = "running"
                        self._running = job
                        return job
        finally:
            self.held_s += time.monotonic() - started

    def _run(self) -> None:
        while True:
            with self._lock:
                while not self._queue:
                    self._wake.wait()
            job = self._take_next()
            if job is None:
                continue
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
