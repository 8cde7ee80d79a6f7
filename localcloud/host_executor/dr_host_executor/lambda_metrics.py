"""The AWS/Lambda `Invocations` and `Errors` metrics, one PutMetricData per second instead of one per invocation.

LocalStack 4.14 starts a thread per invocation that builds a CloudWatch client and sends one PutMetricData
through its own gateway: on 2 cores that was 40 % of the CPU the invoke path used (py-spy, 2026-12-01). Here the
counts are summed per function and sent as StatisticValues (SampleCount = Sum = invocations, Min = Max = 1), so
`Sum` and `SampleCount` over any period ≥ the flush interval read as before.

Standard library only (the sink is injected), so it is unit-tested without LocalStack.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable

LOG = logging.getLogger(__name__)

FLUSH_S = 1.0
MAX_DATUMS = 1000  # PutMetricData's limit per call

# (account, region) → metric data, for one PutMetricData
Sink = Callable[[str, str, list[dict]], None]


class InvocationMetrics:
    """Counts per (account, region, function, metric name); `flush` sends what was counted since the last one."""

    def __init__(self, sink: Sink, flush_s: float = FLUSH_S, clock: Callable[[], float] = time.time) -> None:
        self._sink = sink
        self._flush_s = flush_s
        self._clock = clock
        self._counts: Counter[tuple[str, str, str, str]] = Counter()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def record(self, function_name: str, account_id: str, region_name: str, error: bool = False) -> None:
        """One invocation; an error counts as an invocation and an error, as AWS (and LocalStack) count it."""
        with self._lock:
            self._counts[(account_id, region_name, function_name, "Invocations")] += 1
            if error:
                self._counts[(account_id, region_name, function_name, "Errors")] += 1
        self._ensure_thread()

    def flush(self) -> int:
        """Send the counts; returns how many datums were sent. A failing sink loses that second's counts, logged."""
        with self._lock:
            counts, self._counts = self._counts, Counter()
        if not counts:
            return 0
        stamp = self._clock()
        by_target: dict[tuple[str, str], list[dict]] = {}
        for (account, region, function, metric), n in sorted(counts.items()):
            by_target.setdefault((account, region), []).append(
                {
                    "MetricName": metric,
                    "Dimensions": [{"Name": "FunctionName", "Value": function}],
                    "Timestamp": stamp,
                    "StatisticValues": {"SampleCount": n, "Sum": n, "Minimum": 1, "Maximum": 1},
                }
            )
        sent = 0
        for (account, region), data in by_target.items():
            for start in range(0, len(data), MAX_DATUMS):
                chunk = data[start : start + MAX_DATUMS]
                try:
                    self._sink(account, region, chunk)
                    sent += len(chunk)
                except Exception as exc:
                    LOG.info("Unable to put AWS/Lambda metric data to CloudWatch: %s", exc)
        return sent

    def _ensure_thread(self) -> None:
        if self._thread is not None:
            return
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="dr-lambda-metrics", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while True:
            time.sleep(self._flush_s)
            self.flush()
