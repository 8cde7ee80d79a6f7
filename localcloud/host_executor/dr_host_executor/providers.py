"""LocalStack service providers of the embedded local cloud, selected with PROVIDER_OVERRIDE_<SERVICE>.

`logs:dr` — CloudWatch Logs whose Lambda subscriptions are delivered as on AWS: asynchronously and in batches.
LocalStack community delivers a subscription synchronously inside PutLogEvents, one invoke per call; it ships
each Lambda invocation's logs with its own PutLogEvents on one thread, so under load the logs of every function
fall minutes behind, and a failing destination fails the producer's PutLogEvents. Here PutLogEvents stores the
events and returns; one delivery thread per destination collects what arrived during a short window
(DR_LOGS_SUBSCRIPTION_WINDOW_S, default 1 s) and invokes the destination once per log stream (two streams at a
time, DR_LOGS_SUBSCRIPTION_CONCURRENCY) with the same payload AWS sends (gzip + base64 `awslogs.data`),
retrying a failed invoke twice, as AWS does for async invokes.

`dynamodb:moto` — DynamoDB backed by moto (LocalStack's own needs Java and a download)."""

from __future__ import annotations

import json
import os

from localstack.services.plugins import Service, aws_provider

from .subscriptions import SubscriptionDelivery


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


DELIVERY = SubscriptionDelivery(
    float(os.environ.get("DR_LOGS_SUBSCRIPTION_WINDOW_S", "1.0")),
    _invoke_lambda,
    concurrency=int(os.environ.get("DR_LOGS_SUBSCRIPTION_CONCURRENCY", "2")),
)


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

    # LocalStack's CreateLogStream patch indexes moto's describe_subscription_filters() (a dict view in the
    # moto it ships), so on a group with a subscription the stream is created but the call fails with a 500;
    # the Lambda log shipper then loses that invocation's logs. Finish the job it started.
    from moto.logs.models import LogGroup as MotoLogGroup

    create = MotoLogGroup.create_log_stream

    def create_log_stream(self, log_stream_name):
        try:
            return create(self, log_stream_name)
        except TypeError:
            if log_stream_name not in self.streams:
                raise
            filters = list(self.subscription_filters.values())
            self.streams[log_stream_name].filter_pattern = filters[0].filter_pattern if filters else None
            return None

    MotoLogGroup.create_log_stream = create_log_stream


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


@aws_provider(api="apigateway", name="dr")
def apigateway():
    """LocalStack's next-gen REST API Gateway plus Lambda authorizers, stage throttling and gateway response
    templates (see `apigateway.py`)."""
    from localstack.services.apigateway.next_gen.provider import ApigatewayNextGenProvider
    from localstack.services.moto import MotoFallbackDispatcher

    from .apigateway import install

    install()
    return Service.for_provider(ApigatewayNextGenProvider(), dispatch_table_factory=MotoFallbackDispatcher)


try:  # the CloudFormation plugin base class exists only inside LocalStack
    from localstack.services.cloudformation.resource_provider import CloudFormationResourceProviderPlugin
except ImportError:  # pragma: no cover - imported outside LocalStack's venv
    CloudFormationResourceProviderPlugin = object


class ApiGatewayAuthorizerProviderPlugin(CloudFormationResourceProviderPlugin):
    """AWS::ApiGateway::Authorizer for CloudFormation (community LocalStack has none)."""

    name = "AWS::ApiGateway::Authorizer"

    def __init__(self):
        self.factory = None

    def load(self):
        from .apigateway import authorizer_resource_provider

        self.factory = authorizer_resource_provider()
