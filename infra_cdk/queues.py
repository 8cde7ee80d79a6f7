"""Dead-letter queues for asynchronous invocations (S3 → Lambda), and the alarm on their depth."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_sqs as sqs
from cdk_nag import NagSuppressions
from constructs import Construct

from .alarms import alarm


def dead_letter_queue(scope: Construct, queue_id: str) -> sqs.Queue:
    """An on-failure destination for asynchronous invocations: encrypted, TLS only, kept 14 days."""
    queue = sqs.Queue(
        scope,
        queue_id,
        retention_period=Duration.days(14),
        encryption=sqs.QueueEncryption.SQS_MANAGED,
        enforce_ssl=True,
    )
    NagSuppressions.add_resource_suppressions(
        queue,
        [{"id": "AwsSolutions-SQS3", "reason": "This queue is itself the dead-letter destination of a function."}],
    )
    return queue


def dead_letter_alarm(scope: Construct, alarm_id: str, queue: sqs.IQueue, what: str) -> cloudwatch.Alarm:
    return alarm(
        scope,
        alarm_id,
        f"{what}: an event is in the dead-letter queue",
        queue.metric_approximate_number_of_messages_visible(period=Duration.minutes(5), statistic="Maximum"),
    )
