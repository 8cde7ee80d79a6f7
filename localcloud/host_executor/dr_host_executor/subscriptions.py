"""Asynchronous, batched delivery of CloudWatch Logs subscriptions (no LocalStack imports: unit-tested alone).

Per destination: events collect for a short window after the first one arrives, then the destination is
invoked once per (log group, stream, filter) with the payload AWS sends (`awslogs.data`: base64 of gzipped
JSON), in chunks within CloudWatch Logs' limits; a failed invoke is retried twice, then dropped and counted."""

from __future__ import annotations

import base64
import gzip
import json
import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator

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
    """Per destination: a window to collect events, then one invoke per (log group, stream, filter)."""

    def __init__(self, window_s: float, invoke: Invoke, retries: int = 2, backoff_s: float = 1.0) -> None:
        self.window_s = window_s
        self.retries = retries
        self.backoff_s = backoff_s
        self._invoke = invoke  # (destination_arn, source: dict, event: dict) -> None, raises on failure
        self._cond = threading.Condition()
        self._pending: dict[str, dict[tuple, list[dict]]] = defaultdict(lambda: defaultdict(list))
        self._first_at: dict[str, float] = {}
        self._threads: dict[str, threading.Thread] = {}
        self.delivered = 0
        self.failed = 0

    def submit(self, destination: str, source: tuple, events: list[dict]) -> None:
        with self._cond:
            self._pending[destination][source].extend(events)
            self._first_at.setdefault(destination, time.monotonic())
            if destination not in self._threads:
                thread = threading.Thread(
                    target=self._run, args=(destination,), name=f"logs-subscription-{destination[-40:]}", daemon=True
                )
                self._threads[destination] = thread
                thread.start()
            self._cond.notify_all()

    def _take(self, destination: str) -> dict[tuple, list[dict]]:
        with self._cond:
            while destination not in self._first_at:
                self._cond.wait()
            wait = self._first_at[destination] + self.window_s - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        with self._cond:
            self._first_at.pop(destination, None)
            return self._pending.pop(destination, {})

    def _run(self, destination: str) -> None:
        while True:
            for source, events in self._take(destination).items():
                for chunk in chunks(events):
                    self._deliver(destination, source, chunk)

    def _deliver(self, destination: str, source: tuple, events: list[dict]) -> None:
        event = subscription_event(source, events)
        for attempt in range(self.retries + 1):
            try:
                self._invoke(destination, source, event)
                self.delivered += len(events)
                return
            except Exception as exc:
                if attempt == self.retries:
                    self.failed += len(events)
                    LOG.warning(
                        "logs subscription: %d events for %s dropped after retries: %s", len(events), destination, exc
                    )
                    return
                time.sleep(self.backoff_s * (attempt + 1))
