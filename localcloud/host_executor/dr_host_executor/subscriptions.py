"""Asynchronous, batched delivery of CloudWatch Logs subscriptions (no LocalStack imports: unit-tested alone).

Per destination: events collect for a short window after the first one arrives, then the destination is
invoked once per (log group, stream, filter), a few streams at a time, with the payload AWS sends
(`awslogs.data`: base64 of gzipped JSON), in chunks within CloudWatch Logs' limits; a failed invoke is retried
twice, then dropped and counted. A destination that falls too far behind loses its oldest events (counted)."""

from __future__ import annotations

import base64
import gzip
import json
import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

LOG = logging.getLogger(__name__)
MAX_EVENTS_PER_PAYLOAD = 10_000  # CloudWatch Logs' own limits per delivered batch
MAX_BYTES_PER_PAYLOAD = 1_000_000

Invoke = Callable[[str, tuple, dict], None]


def subscription_event(source: tuple, events: list[dict]) -> dict:
    """The Lambda event of one delivery: source is (owner, log group, log stream, filter name, region)."""
    owner, group, stream, filter_name = source[:4]
    message = {
        "messageType": "DATA_MESSAGE",
        "owner": owner,
        "logGroup": group,
        "logStream": stream,
        "subscriptionFilters": [filter_name],
        "logEvents": events,
    }
    data = gzip.compress(json.dumps(message, separators=(",", ":")).encode())
    return {"awslogs": {"data": base64.b64encode(data).decode()}}


def chunks(events: list[dict]) -> Iterator[list[dict]]:
    chunk: list[dict] = []
    size = 0
    for event in events:
        n = len(event["message"]) + 26
        if chunk and (len(chunk) >= MAX_EVENTS_PER_PAYLOAD or size + n > MAX_BYTES_PER_PAYLOAD):
            yield chunk
            chunk, size = [], 0
        chunk.append(event)
        size += n
    if chunk:
        yield chunk


class SubscriptionDelivery:
    """Per destination: a window to collect events, then one invoke per (log group, stream, filter), up to
    `concurrency` at a time (each stream's batches stay in order: a stream is in one invoke per window)."""

    def __init__(
        self,
        window_s: float,
        invoke: Invoke,
        retries: int = 2,
        backoff_s: float = 1.0,
        concurrency: int = 4,
        max_pending: int = 200_000,
    ) -> None:
        self.window_s = window_s
        self.retries = retries
        self.backoff_s = backoff_s
        self.max_pending = max_pending  # events per destination; beyond it the oldest are dropped and counted
        self._invoke = invoke  # (destination_arn, source, event) -> None, raises on failure
        self._pool = ThreadPoolExecutor(max_workers=max(concurrency, 1), thread_name_prefix="logs-subscription-invoke")
        self._cond = threading.Condition()
        self._pending: dict[str, dict[tuple, list[dict]]] = defaultdict(lambda: defaultdict(list))
        self._counts: dict[str, int] = defaultdict(int)
        self._first_at: dict[str, float] = {}
        self._threads: dict[str, threading.Thread] = {}
        self._count_lock = threading.Lock()
        self.delivered = 0
        self.failed = 0  # events given up on after retries, or dropped because a destination fell too far behind

    def _count(self, delivered: int = 0, failed: int = 0) -> None:
        with self._count_lock:
            self.delivered += delivered
            self.failed += failed

    def submit(self, destination: str, source: tuple, events: list[dict]) -> None:
        with self._cond:
            pending = self._pending[destination]
            pending[source].extend(events)
            self._counts[destination] += len(events)
            self._shed(destination)
            self._first_at.setdefault(destination, time.monotonic())
            thread = self._threads.get(destination)
            if thread is None or not thread.is_alive():
                thread = threading.Thread(
                    target=self._run, args=(destination,), name=f"logs-subscription-{destination[-40:]}", daemon=True
                )
                self._threads[destination] = thread
                thread.start()
            self._cond.notify_all()

    def _shed(self, destination: str) -> None:
        over = self._counts[destination] - self.max_pending
        if over <= 0:
            return
        pending = self._pending[destination]
        for source in list(pending):
            n = min(over, len(pending[source]))
            del pending[source][:n]
            over -= n
            self._counts[destination] -= n
            self._count(failed=n)
            if not pending[source]:
                del pending[source]
            if over <= 0:
                break
        LOG.warning("logs subscription: %s is too far behind; oldest events dropped", destination)

    def _take(self, destination: str) -> dict[tuple, list[dict]]:
        with self._cond:
            while destination not in self._first_at:
                self._cond.wait()
            wait = self._first_at[destination] + self.window_s - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        with self._cond:
            self._first_at.pop(destination, None)
            self._counts[destination] = 0
            return self._pending.pop(destination, {})

    def _run(self, destination: str) -> None:
        while True:
            try:
                batch = self._take(destination)
                jobs = [
                    self._pool.submit(self._deliver_all, destination, source, events)
                    for source, events in batch.items()
                ]
                for job in jobs:
                    job.result()
            except Exception:  # never let one bad batch end delivery for this destination
                LOG.exception("logs subscription: delivery to %s failed", destination)

    def _deliver_all(self, destination: str, source: tuple, events: list[dict]) -> None:
        for chunk in chunks(events):
            self._deliver(destination, source, chunk)

    def _deliver(self, destination: str, source: tuple, events: list[dict]) -> None:
        for attempt in range(self.retries + 1):
            try:
                self._invoke(destination, source, subscription_event(source, events))
                self._count(delivered=len(events))
                return
            except Exception as exc:
                if attempt == self.retries:
                    self._count(failed=len(events))
                    LOG.warning(
                        "logs subscription: %d events for %s dropped after retries: %s", len(events), destination, exc
                    )
                    return
                time.sleep(self.backoff_s * (attempt + 1))
