"""LocalStack service providers of the embedded local cloud, selected with PROVIDER_OVERRIDE_<SERVICE>.

`logs:dr` — CloudWatch Logs whose Lambda subscriptions are delivered as on AWS: asynchronously and in batches.
LocalStack community delivers a subscription synchronously inside PutLogEvents, one invoke per call; it ships
each Lambda invocation's logs with its own PutLogEvents on one thread, so under load the logs of every function
fall minutes behind, and a failing destination fails the producer's PutLogEvents. Here PutLogEvents stores the
events and returns; one delivery thread per destination collects what arrived during a short window
(DR_LOGS_SUBSCRIPTION_WINDOW_S, default 0.5 s) and invokes the destination once per log stream with the same
payload AWS sends (gzip + base64 `awslogs.data`), retrying a failed invoke twice, as AWS does for async invokes.

`dynamodb:moto` — DynamoDB backed by moto (LocalStack's own needs Java and a download)."""

from __future__ import annotations

import base64
import gzip
import json
import logging
import os
import threading
import time
from collections import defaultdict

from localstack.services.plugins import Service, aws_provider

LOG = logging.getLogger(__name__)
MAX_EVENTS_PER_PAYLOAD = 10_000  # CloudWatch Logs' own limits per delivered batch
MAX_BYTES_PER_PAYLOAD = 1_000_000


class SubscriptionDelivery:
    """Per destination: a window to collect events, then one invoke per (log group, stream, filter)."""

    def __init__(self, window_s: float, invoke, retries: int = 2, backoff_s: float = 1.0) -> None:
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
                for chunk in _chunks(events):
                    self._deliver(destination, source, chunk)

    def _deliver(self, destination: str, source: tuple, events: list[dict]) -> None:
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
        event = {"awslogs": {"data": base64.b64encode(data).decode()}}
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


def _chunks(events: list[dict]):
    chunk, size = [], 0
    for event in events:
        n = len(event["message"]) + 26
        if chunk and (len(chunk) >= MAX_EVENTS_PER_PAYLOAD or size + n > MAX_BYTES_PER_PAYLOAD):
            yield chunk
            chunk, size = [], 0
        chunk.append(event)
        size += n
    if chunk:
        yield chunk


def _invoke_lambda(destination: str, source: tuple, event: dict) -> None:
    from localstack.aws.connect import connect_to
    from localstack.utils.aws import arns
    from localstack.utils.aws.client_types import ServicePrincipal

    owner, group, _stream, _filter, region = source
    arn = arns.parse_arn(destination)
    client = connect_to(aws_access_key_id=arn["account"], region_name=arn["region"]).lambda_.request_metadata(
        source_arn=arns.log_group_arn(group, owner, region), service_principal=ServicePrincipal.logs
    )
    response = client.invoke(FunctionName=destination, Payload=json.dumps(event))
    if response.get("FunctionError"):
        raise RuntimeError(f"{response['FunctionError']}: {response['Payload'].read()[:300]!r}")


DELIVERY = SubscriptionDelivery(float(os.environ.get("DR_LOGS_SUBSCRIPTION_WINDOW_S", "0.5")), _invoke_lambda)


def _patch_log_stream() -> None:
    import localstack.services.logs.provider  # noqa: F401  (applies LocalStack's own patches first)
    from moto.core.utils import unix_time_millis
    from moto.logs.models import LogEvent
    from moto.logs.models import LogStream as MotoLogStream

    target = MotoLogStream.put_log_events  # LocalStack's version (its `patch` helper would patch its module)
    if getattr(target, "_dr_async", False):
        return

    def put_log_events(self, log_events):
        filters = list(self.log_group.subscription_filters.values())
        if any(f.destination_arn and ":lambda:" not in f.destination_arn for f in filters):
            return target(self, log_events)  # Kinesis/Firehose: LocalStack's own (synchronous) delivery
        self.last_ingestion_time = int(unix_time_millis())
        self.stored_bytes += sum(len(e["message"]) for e in log_events)
        stored = [LogEvent(self.last_ingestion_time, e) for e in log_events]
        self.events += stored
        self.upload_sequence_token += 1
        payload = [{"id": str(e.event_id), "timestamp": e.timestamp, "message": e.message} for e in stored]
        for f in filters:
            if f.destination_arn and payload:
                source = (self.account_id, self.log_group.name, self.log_stream_name, f.name, self.region)
                DELIVERY.submit(f.destination_arn, source, payload)
        return f"{self.upload_sequence_token:056d}"

    put_log_events._dr_async = True
    MotoLogStream.put_log_events = put_log_events


@aws_provider(api="logs", name="dr")
def logs():
    from localstack.services.logs.provider import LogsProvider
    from localstack.services.moto import MotoFallbackDispatcher

    _patch_log_stream()
    return Service.for_provider(LogsProvider(), dispatch_table_factory=MotoFallbackDispatcher)


@aws_provider(api="dynamodb", name="moto")
def dynamodb():
    from localstack.aws.api.dynamodb import DynamodbApi
    from localstack.services.moto import MotoFallbackDispatcher

    class MotoDynamoDBProvider(DynamodbApi):
        """Every operation falls through to moto's DynamoDB backend."""

    return Service.for_provider(MotoDynamoDBProvider(), dispatch_table_factory=MotoFallbackDispatcher)
