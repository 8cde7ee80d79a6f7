"""The EMF → Prometheus bridge: decode a subscription batch, convert, remote-write, never fail the caller.

Delivery is at-least-once while the execution environment lives: a write that fails for a reason worth
retrying (Prometheus down, timeout, 429/5xx) keeps its samples in memory and sends them again, with the next
batch, up to `max_buffered` samples; beyond that the oldest are dropped and counted. A duplicate sample is
harmless (Prometheus ignores an identical sample it already has). Whatever happens, `handle` returns quickly
with a summary: on LocalStack the subscription is part of the producer's PutLogEvents call."""

from __future__ import annotations

import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from . import emf, remote_write

BRIDGE_NAMESPACE = "DiabetesRisk"

Sender = Callable[[bytes], remote_write.WriteResult]


@dataclass(frozen=True)
class BridgeConfig:
    url: str
    timeout_s: float = 2.0
    sigv4_region: str | None = None  # set for Amazon Managed Service for Prometheus
    max_buffered: int = 100_000
    max_samples_per_write: int = 20_000


class MetricsBridge:
    """One per execution environment (module scope in the handler): the buffer lives as long as it does."""

    def __init__(self, config: BridgeConfig, sender: Sender | None = None, clock: Callable[[], float] = time.time):
        self.config = config
        self.instance = uuid.uuid4().hex[:12]
        self._send = sender or (lambda body: remote_write.send(config.url, body, config.timeout_s, config.sigv4_region))
        self._clock = clock
        self._pending: deque[emf.Sample] = deque()
        self.totals = {"received": 0, "written": 0, "dropped": 0, "invalid": 0, "payload_errors": 0}
        self._unreported_dropped = 0  # dropped since the last successful write (reported with the next one)
        self._reported_invalid = 0

    # --- one subscription batch ------------------------------------------------------------------------
    def handle(self, event: dict) -> dict:
        started = time.perf_counter()
        summary = {"records": 0, "samples": 0, "written": 0, "dropped": 0, "buffered": 0, "error": None}
        try:
            conversion = emf.convert(emf.decode_subscription(event))
        except emf.PayloadError as exc:
            self.totals["payload_errors"] += 1
            conversion, summary["error"] = emf.Conversion(), str(exc)
        except Exception as exc:  # a record shape nobody foresaw must not fail the producer's log delivery
            self.totals["payload_errors"] += 1
            conversion, summary["error"] = emf.Conversion(), f"{type(exc).__name__}: {exc}"
        summary["records"], summary["samples"] = conversion.records, len(conversion.samples)
        self.totals["received"] += len(conversion.samples)
        self.totals["invalid"] += conversion.invalid_values
        self._pending.extend(conversion.samples)
        dropped_over_cap = self._trim()
        written, dropped, error = self._flush(time.perf_counter() - started)
        summary.update(
            written=written,
            dropped=dropped + dropped_over_cap,
            buffered=len(self._pending),
            error=summary["error"] or error,
        )
        summary["seconds"] = round(time.perf_counter() - started, 4)
        return summary

    def _trim(self) -> int:
        over = len(self._pending) - self.config.max_buffered
        for _ in range(max(over, 0)):
            self._pending.popleft()
        self.totals["dropped"] += max(over, 0)
        self._unreported_dropped += max(over, 0)
        return max(over, 0)

    def _own_samples(self, batch_samples: int, seconds: float) -> list[emf.Sample]:
        """The bridge's own health, written with the data: deltas since the last successful write, as EMF
        metrics are, so `sum_over_time` reads them the same way."""
        now = int(self._clock() * 1000)
        labels = (("instance", self.instance), ("service", "metrics_bridge"))
        values = {
            "samples_written": batch_samples,
            "samples_dropped": self._unreported_dropped,
            "invalid_values": self.totals["invalid"] - self._reported_invalid,
            "write_seconds": seconds,
        }
        return [
            emf.Sample(emf.metric_name(BRIDGE_NAMESPACE, f"Bridge_{k}"), labels, float(v), now)
            for k, v in values.items()
        ]

    def _flush(self, elapsed: float) -> tuple[int, int, str | None]:
        """Send what is pending, in chunks. Returns (written, dropped, last error)."""
        written = dropped = 0
        error = None
        while self._pending:
            n = min(len(self._pending), self.config.max_samples_per_write)
            chunk = [self._pending[i] for i in range(n)]
            try:
                body = remote_write.encode([*chunk, *self._own_samples(n, elapsed)])
                result = self._send(body)
            except Exception as exc:  # encoding or signing failed: these samples will never go through
                result = remote_write.WriteResult(False, 0, False, f"{type(exc).__name__}: {exc}")
            if result.ok:
                for _ in range(n):
                    self._pending.popleft()
                written += n
                self.totals["written"] += n
                self._unreported_dropped = 0
                self._reported_invalid = self.totals["invalid"]
                continue
            error = f"remote write failed (HTTP {result.status or 'unreachable'}): {result.detail[:300]}"
            if result.retryable:
                break  # keep them for the next batch; Prometheus may be back by then
            # Refused for good (e.g. 400 for a sample outside the out-of-order window): drop, count, go on.
            for _ in range(n):
                self._pending.popleft()
            dropped += n
            self.totals["dropped"] += n
            self._unreported_dropped += n
        return written, dropped, error
