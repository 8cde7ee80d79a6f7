"""The EMF → Prometheus bridge: decode a subscription batch, convert, remote-write, never fail the caller.

Delivery is at-least-once while the execution environment lives: a write that fails for a reason worth
retrying (Prometheus down, timeout, 429/5xx, credentials not yet available) keeps its samples in memory and
sends them again with the next batch, up to `max_buffered` samples; beyond that the oldest are dropped and
counted. A request Prometheus refuses (400: one sample it will not take rolls back the whole request) is split
in halves until the refused samples are isolated (within a budget of requests per batch), so one bad sample
costs itself and, at worst, a few neighbours. Samples older than
Prometheus' out-of-order window are dropped before sending, for the same reason. A duplicate is harmless:
Prometheus ignores an identical sample it already has. Whatever happens, `handle` returns a summary: on
LocalStack the subscription used to run inside the producer's PutLogEvents."""

from __future__ import annotations

import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from . import emf, remote_write

BRIDGE_NAMESPACE = "DiabetesRisk"
MAX_SPLIT_DEPTH = 12  # 20,000 samples → single samples in 15 halvings; beyond 12 the rest is dropped
MAX_REQUESTS_PER_BATCH = 64  # halving stops there too: one batch never turns into thousands of requests

Sender = Callable[[bytes], remote_write.WriteResult]


@dataclass(frozen=True)
class BridgeConfig:
    url: str
    timeout_s: float = 2.0
    sigv4_region: str | None = None  # set for Amazon Managed Service for Prometheus
    max_buffered: int = 100_000
    max_samples_per_write: int = 20_000
    # How late a sample may still be sent: the local Prometheus accepts 1 h (out_of_order_time_window); Amazon
    # Managed Prometheus far less, so the CDK app sets this lower on AWS.
    max_age_s: float = 55 * 60


class MetricsBridge:
    """One per execution environment (module scope in the handler): the buffer lives as long as it does."""

    def __init__(self, config: BridgeConfig, sender: Sender | None = None, clock: Callable[[], float] = time.time):
        if config.max_buffered < 1 or config.max_samples_per_write < 1:
            raise ValueError("max_buffered and max_samples_per_write must be at least 1")
        self.config = config
        self.instance = uuid.uuid4().hex[:12]
        self._send = sender or (lambda body: remote_write.send(config.url, body, config.timeout_s, config.sigv4_region))
        self._clock = clock
        self._pending: deque[emf.Sample] = deque()
        self.totals = {"received": 0, "written": 0, "dropped": 0, "invalid": 0, "payload_errors": 0, "too_old": 0}
        self._unreported = {"written": 0, "dropped": 0, "invalid": 0, "payload_errors": 0}  # not yet reported
        self._last_batch_seconds: float | None = None
        self._requests_left = MAX_REQUESTS_PER_BATCH
        self._deadline: float | None = None

    # --- one subscription batch ------------------------------------------------------------------------
    def handle(self, event: dict, time_left_s: float | None = None) -> dict:
        """One subscription batch. `time_left_s`: the invocation's remaining time; writes stop 2.5 s before it
        runs out and what is left stays buffered (a timed-out environment would lose its buffer)."""
        started = time.perf_counter()
        self._requests_left = MAX_REQUESTS_PER_BATCH
        self._deadline = None if time_left_s is None else time.monotonic() + time_left_s - 2.5
        summary = {"records": 0, "samples": 0, "written": 0, "dropped": 0, "buffered": 0, "error": None}
        try:
            conversion = emf.convert(emf.decode_subscription(event))
        except emf.PayloadError as exc:
            conversion, summary["error"] = emf.Conversion(), str(exc)
        except Exception as exc:  # a payload shape nobody foresaw must not fail the bridge
            conversion, summary["error"] = emf.Conversion(), f"{type(exc).__name__}: {exc}"
        if summary["error"]:
            self.totals["payload_errors"] += 1
            self._unreported["payload_errors"] += 1
        summary["records"], summary["samples"] = conversion.records, len(conversion.samples)
        self.totals["received"] += len(conversion.samples)
        self.totals["invalid"] += conversion.invalid_values
        self._unreported["invalid"] += conversion.invalid_values
        self._pending.extend(conversion.samples)
        written, dropped, error = self._flush()
        dropped += self._trim()
        self._unreported["written"] += written
        health_error = self._report_health()
        summary.update(
            written=written,
            dropped=dropped,
            buffered=len(self._pending),
            error=summary["error"] or error or health_error,
        )
        self._last_batch_seconds = time.perf_counter() - started
        summary["seconds"] = round(self._last_batch_seconds, 4)
        return summary

    def _count_dropped(self, n: int) -> None:
        self.totals["dropped"] += n
        self._unreported["dropped"] += n

    def _trim(self) -> int:
        """After a failed flush: keep at most max_buffered samples, dropping the oldest."""
        over = max(len(self._pending) - self.config.max_buffered, 0)
        for _ in range(over):
            self._pending.popleft()
        self._count_dropped(over)
        return over

    def _expire(self) -> int:
        """Samples Prometheus would refuse as too old (or with a timestamp that is not a time) go first."""
        oldest_ms = (self._clock() - self.config.max_age_s) * 1000
        kept = deque(s for s in self._pending if s.timestamp_ms >= oldest_ms)
        expired = len(self._pending) - len(kept)
        self._pending = kept
        self.totals["too_old"] += expired
        self._count_dropped(expired)
        return expired

    def _flush(self) -> tuple[int, int, str | None]:
        """Send what is pending, in chunks. Returns (written, dropped, last error)."""
        written, dropped = 0, self._expire()
        error = None
        while self._pending:
            if self._out_of_time():
                error = error or "stopped writing: the invocation is about to time out (samples kept)"
                break
            n = min(len(self._pending), self.config.max_samples_per_write)
            chunk = [self._pending.popleft() for _ in range(n)]
            ok, refused, retry, error = self._write(chunk, depth=0)
            written += ok
            dropped += refused
            self._count_dropped(refused)
            if retry:  # unreachable: put back, in order, and stop for this batch
                self._pending.extendleft(reversed(retry))
                break
        self.totals["written"] += written
        return written, dropped, error

    def _out_of_time(self) -> bool:
        return self._deadline is not None and time.monotonic() >= self._deadline

    def _write(self, chunk: list[emf.Sample], depth: int) -> tuple[int, int, list[emf.Sample], str | None]:
        """(written, refused, to retry later, error) for one chunk; a refusal splits it in halves."""
        if self._out_of_time():
            return 0, 0, chunk, "stopped writing: the invocation is about to time out (samples kept)"
        if self._requests_left <= 0:
            return 0, len(chunk), [], "refused samples not isolated: request budget of this batch used up"
        self._requests_left -= 1
        try:
            body = remote_write.encode(chunk)
        except Exception as exc:  # a sample the encoder refuses: split like a refusal to find it
            result = remote_write.WriteResult(False, 0, False, f"cannot encode: {type(exc).__name__}: {exc}")
        else:
            try:
                result = self._send(body)
            except Exception as exc:  # the sender itself broke (not Prometheus): drop this chunk, counted
                return 0, len(chunk), [], f"remote write failed: {type(exc).__name__}: {exc}"
        if result.ok:
            return len(chunk), 0, [], None
        error = f"remote write failed (HTTP {result.status or 'unreachable'}): {result.detail[:300]}"
        if result.retryable:
            return 0, 0, chunk, error
        if len(chunk) == 1 or depth >= MAX_SPLIT_DEPTH or self._requests_left <= 1:
            return 0, len(chunk), [], error
        half = len(chunk) // 2
        w1, r1, retry1, e1 = self._write(chunk[:half], depth + 1)
        if retry1:  # Prometheus went away meanwhile: keep both halves for later
            return w1, r1, retry1 + chunk[half:], e1
        w2, r2, retry2, e2 = self._write(chunk[half:], depth + 1)
        return w1 + w2, r1 + r2, retry2, e2 or e1

    def _report_health(self) -> str | None:
        """The bridge's own health in a request of its own (so refused data cannot take it down): deltas since
        the last report that got through, as EMF metrics are, so `sum_over_time` reads them the same way."""
        now = int(self._clock() * 1000)
        labels = (("instance", self.instance), ("service", "metrics_bridge"))
        values = {
            "samples_written": self._unreported["written"],
            "samples_dropped": self._unreported["dropped"],
            "invalid_values": self._unreported["invalid"],
            "payload_errors": self._unreported["payload_errors"],
            "buffered_samples": len(self._pending),
        }
        if self._last_batch_seconds is not None:
            values["batch_seconds"] = self._last_batch_seconds  # the previous batch, its writes included
        samples = [
            emf.Sample(emf.metric_name(BRIDGE_NAMESPACE, f"Bridge_{k}"), labels, float(v), now)
            for k, v in values.items()
        ]
        try:
            result = self._send(remote_write.encode(samples))
        except Exception as exc:
            return f"health report failed: {type(exc).__name__}: {exc}"
        if not result.ok:
            return f"health report failed (HTTP {result.status or 'unreachable'})"
        self._unreported = dict.fromkeys(self._unreported, 0)
        return None
