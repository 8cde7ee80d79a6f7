"""The EMF → Prometheus bridge: decode a subscription batch, convert, remote-write, never fail the caller.

Delivery is at-least-once while the execution environment lives: a write that fails for a reason worth
retrying (Prometheus down, timeout, 429/5xx, credentials not yet available) keeps its samples in memory and
sends them again with the next batch, up to `max_buffered` samples; beyond that the oldest are dropped and
counted. A request Prometheus refuses (400: one sample it will not take rolls back the whole request) is split
in halves until the refused samples are isolated, so one bad sample costs only itself. Samples older than
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

Sender = Callable[[bytes], remote_write.WriteResult]


@dataclass(frozen=True)
class BridgeConfig:
    url: str
    timeout_s: float = 2.0
    sigv4_region: str | None = None  # set for Amazon Managed Service for Prometheus
    max_buffered: int = 100_000
    max_samples_per_write: int = 20_000
    max_age_s: float = 55 * 60  # Prometheus here accepts samples up to 1 h late (out_of_order_time_window)


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
        self._unreported = {"dropped": 0, "invalid": 0}  # since the last health report that got through
        self._last_batch_seconds: float | None = None

    # --- one subscription batch ------------------------------------------------------------------------
    def handle(self, event: dict) -> dict:
        started = time.perf_counter()
        summary = {"records": 0, "samples": 0, "written": 0, "dropped": 0, "buffered": 0, "error": None}
        try:
            conversion = emf.convert(emf.decode_subscription(event))
        except emf.PayloadError as exc:
            self.totals["payload_errors"] += 1
            conversion, summary["error"] = emf.Conversion(), str(exc)
        except Exception as exc:  # a payload shape nobody foresaw must not fail the bridge
            self.totals["payload_errors"] += 1
            conversion, summary["error"] = emf.Conversion(), f"{type(exc).__name__}: {exc}"
        summary["records"], summary["samples"] = conversion.records, len(conversion.samples)
        self.totals["received"] += len(conversion.samples)
        self.totals["invalid"] += conversion.invalid_values
        self._unreported["invalid"] += conversion.invalid_values
        self._pending.extend(conversion.samples)
        written, dropped, error = self._flush()
        dropped += self._trim()
        health_error = self._report_health(written)
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

    def _write(self, chunk: list[emf.Sample], depth: int) -> tuple[int, int, list[emf.Sample], str | None]:
        """(written, refused, to retry later, error) for one chunk; a 400 splits it in halves."""
        try:
            result = self._send(remote_write.encode(chunk))
        except Exception as exc:  # encoding failed: these samples will never go through
            return 0, len(chunk), [], f"remote write failed: {type(exc).__name__}: {exc}"
        if result.ok:
            return len(chunk), 0, [], None
        error = f"remote write failed (HTTP {result.status or 'unreachable'}): {result.detail[:300]}"
        if result.retryable:
            return 0, 0, chunk, error
        if len(chunk) == 1 or depth >= MAX_SPLIT_DEPTH:
            return 0, len(chunk), [], error
        half = len(chunk) // 2
        w1, r1, retry1, e1 = self._write(chunk[:half], depth + 1)
        if retry1:  # Prometheus went away meanwhile: keep both halves for later
            return w1, r1, retry1 + chunk[half:], e1
        w2, r2, retry2, e2 = self._write(chunk[half:], depth + 1)
        return w1 + w2, r1 + r2, retry2, e2 or e1

    def _report_health(self, written: int) -> str | None:
        """The bridge's own health in a request of its own (so refused data cannot take it down): deltas since
        the last report that got through, as EMF metrics are, so `sum_over_time` reads them the same way."""
        now = int(self._clock() * 1000)
        labels = (("instance", self.instance), ("service", "metrics_bridge"))
        values = {
            "samples_written": written,
            "samples_dropped": self._unreported["dropped"],
            "invalid_values": self._unreported["invalid"],
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
        self._unreported = {"dropped": 0, "invalid": 0}
        return None
