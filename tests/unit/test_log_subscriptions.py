"""The local cloud's asynchronous, batched delivery of CloudWatch Logs subscriptions (no LocalStack needed)."""

from __future__ import annotations

import base64
import gzip
import json
import threading
import time

from dr_host_executor.subscriptions import MAX_EVENTS_PER_PAYLOAD, SubscriptionDelivery, chunks, subscription_event

DEST = "arn:aws:lambda:us-east-1:000000000000:function:bridge"


def source(stream: str) -> tuple:
    return ("000000000000", "group", stream, "filter", "us-east-1")


def events(n: int, prefix: str = "m") -> list[dict]:
    return [{"id": str(i), "timestamp": i, "message": f"{prefix}{i}"} for i in range(n)]


def decode(event: dict) -> dict:
    return json.loads(gzip.decompress(base64.b64decode(event["awslogs"]["data"])))


class Recorder:
    def __init__(self, fail_times: int = 0) -> None:
        self.calls: list[tuple[str, dict]] = []
        self.fail_times = fail_times
        self.done = threading.Event()

    def __call__(self, destination: str, src: tuple, event: dict) -> None:
        if self.fail_times:
            self.fail_times -= 1
            raise RuntimeError("destination failed")
        self.calls.append((destination, decode(event)))
        self.done.set()


def wait_for(predicate, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.01)
    raise AssertionError("timed out")


def test_the_payload_is_what_aws_sends():
    message = decode(subscription_event(source("s1"), events(2)))
    assert message == {
        "messageType": "DATA_MESSAGE",
        "owner": "000000000000",
        "logGroup": "group",
        "logStream": "s1",
        "subscriptionFilters": ["filter"],
        "logEvents": events(2),
    }


def test_submit_returns_at_once_and_a_window_becomes_one_invoke_per_stream():
    rec = Recorder()
    delivery = SubscriptionDelivery(window_s=1.0, invoke=rec)
    started = time.perf_counter()
    for i in range(10):
        delivery.submit(DEST, source(f"s{i % 2}"), events(1, prefix=f"call{i}-"))
    assert time.perf_counter() - started < 0.5  # the producer never waits for the destination (1 s window)
    wait_for(lambda: len(rec.calls) == 2)
    by_stream = {m["logStream"]: [e["message"] for e in m["logEvents"]] for _, m in rec.calls}
    assert by_stream == {
        "s0": [f"call{i}-0" for i in range(0, 10, 2)],
        "s1": [f"call{i}-0" for i in range(1, 10, 2)],
    }
    assert delivery.delivered == 10


def test_a_failing_destination_is_retried_then_dropped_and_counted_without_blocking_producers():
    rec = Recorder(fail_times=2)
    delivery = SubscriptionDelivery(window_s=0.0, invoke=rec, retries=2, backoff_s=0.01)
    delivery.submit(DEST, source("s"), events(3))
    wait_for(lambda: delivery.delivered == 3)  # third attempt succeeds
    always = Recorder(fail_times=10**6)
    failing = SubscriptionDelivery(window_s=0.0, invoke=always, retries=2, backoff_s=0.01)
    failing.submit(DEST, source("s"), events(4))
    wait_for(lambda: failing.failed == 4)
    assert failing.delivered == 0


def test_a_destination_far_behind_loses_its_oldest_events_counted():
    gate = threading.Event()
    seen: list[dict] = []

    def slow(destination: str, src: tuple, event: dict) -> None:
        gate.wait(5)
        seen.append(decode(event))

    delivery = SubscriptionDelivery(window_s=0.0, invoke=slow, max_pending=5)
    delivery.submit(DEST, source("s"), events(1, prefix="first"))  # taken at once, its invoke blocks
    wait_for(lambda: not delivery._pending.get(DEST))
    delivery.submit(DEST, source("s"), events(8, prefix="later"))
    assert delivery.failed == 3
    gate.set()
    wait_for(lambda: delivery.delivered == 6)
    assert [e["message"] for e in seen[-1]["logEvents"]] == [f"later{i}" for i in range(3, 8)]


def test_an_exception_outside_the_invoke_does_not_end_delivery(monkeypatch):
    import dr_host_executor.subscriptions as subs

    rec = Recorder()
    delivery = SubscriptionDelivery(window_s=0.0, invoke=rec)
    real = subs.chunks
    calls = {"n": 0}

    def flaky(evs):
        calls["n"] += 1
        if calls["n"] == 1:
            raise ValueError("cannot split")
        return real(evs)

    monkeypatch.setattr(subs, "chunks", flaky)
    delivery.submit(DEST, source("s"), events(1, prefix="lost"))
    wait_for(lambda: calls["n"] >= 1)
    thread = delivery._threads[DEST]
    delivery.submit(DEST, source("s"), events(1, prefix="kept"))
    wait_for(lambda: len(rec.calls) == 1)
    assert rec.calls[0][1]["logEvents"][0]["message"] == "kept0"
    assert delivery._threads[DEST] is thread and thread.is_alive()  # the same thread carried on


def test_a_dead_delivery_thread_is_replaced():
    rec = Recorder()
    delivery = SubscriptionDelivery(window_s=0.0, invoke=rec)
    delivery._threads[DEST] = threading.Thread(target=lambda: None)  # never started: not alive
    delivery.submit(DEST, source("s"), events(2))
    wait_for(lambda: delivery.delivered == 2)


def test_chunks_stay_within_cloudwatch_limits():
    many = events(MAX_EVENTS_PER_PAYLOAD + 5)
    assert [len(c) for c in chunks(many)] == [MAX_EVENTS_PER_PAYLOAD, 5]
    big = [{"id": str(i), "timestamp": i, "message": "x" * 300_000} for i in range(4)]
    assert [len(c) for c in chunks(big)] == [3, 1]
