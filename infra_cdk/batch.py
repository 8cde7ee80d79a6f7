"""Batch scoring: a file dropped under inbox/ in the batch bucket invokes the batch-score function, which writes
outbox/<name>/ (predictions, errors, manifest) or moves the file to quarantine/. The notification is declared on
the bucket (no custom resource), so it deploys the same way to the local cloud and to AWS."""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy, Size
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_destinations as destinations
from aws_cdk import aws_logs as logs
from aws_cdk import aws_stepfunctions as sfn
from cdk_nag import NagSuppressions
from constructs import Construct

from inference_core.feature_layout import INGESTED_PREFIX, MEASUREMENTS_PREFIX

from .alarms import alarm
from .bundling import function_code
from .config import DeployConfig
from .queues import dead_letter_alarm, dead_letter_queue
from .storage import Storage, bucket_arn, bucket_name, invoke_on_created

# 2 vCPUs from 3,538 MB up: one scores and writes, the other reads, checks and profiles the next chunk.
MEMORY_MB = 3584
TIMEOUT = Duration.minutes(15)


class BatchScoring(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        config: DeployConfig,
        storage: Storage,
        state_machine: sfn.IStateMachine,
    ) -> None:
        super().__init__(scope, construct_id)
        log_group = logs.LogGroup(
            self, "BatchScoreLogs", retention=logs.RetentionDays.ONE_MONTH, removal_policy=RemovalPolicy.DESTROY
        )
        self.log_group = log_group
        role = iam.Role(self, "BatchScoreRole", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"))
        for actions, resources in (
            (["s3:GetObject", "s3:GetObjectVersion", "s3:DeleteObject"], [bucket_arn("batch", "/inbox/*")]),
            (["s3:GetObject", "s3:PutObject", "s3:DeleteObject"], [bucket_arn("batch", "/outbox/*")]),
            (["s3:PutObject"], [bucket_arn("batch", "/quarantine/*")]),
            # the feature store: valid rows with patient ids, and the marker that refreshes the online store (read back:
            # a retried delivery writes it if the first stopped before it)
            (
                ["s3:PutObject"],
                [bucket_arn("data", f"/{MEASUREMENTS_PREFIX}*"), bucket_arn("data", f"/{INGESTED_PREFIX}*")],
            ),
            (["s3:GetObject"], [bucket_arn("data", f"/{INGESTED_PREFIX}*")]),
            (["s3:ListBucket"], [bucket_arn("batch")]),
            (
                ["s3:GetObject"],
                [bucket_arn("artifacts", "/serving/champion.json"), bucket_arn("artifacts", "/models/*")],
            ),
            (["states:StartExecution"], [state_machine.state_machine_arn]),
            (["logs:CreateLogStream", "logs:PutLogEvents"], [f"{log_group.log_group_arn}:*"]),
        ):
            role.add_to_policy(iam.PolicyStatement(actions=actions, resources=resources))
        # Powertools idempotency: one record per object version (bucket, key, version id), kept a week (TTL), well
        # past the function's 15 minutes; the in-progress state expires with the invocation's remaining time.
        self.idempotency = dynamodb.Table(
            self,
            "Idempotency",
            partition_key=dynamodb.Attribute(name="id", type=dynamodb.AttributeType.STRING),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            time_to_live_attribute="expiration",
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=not config.local
            ),
            removal_policy=RemovalPolicy.DESTROY,
            encryption=dynamodb.TableEncryption.CUSTOMER_MANAGED,
            encryption_key=storage.keys["batch"],
        )
        self.dead_letters = dead_letter_queue(self, "BatchDeadLetters")
        self.function = lambda_.Function(
            self,
            "BatchScore",
            runtime=lambda_.Runtime.PYTHON_3_13,
            handler="batch_score.app.handler",
            code=function_code(None if config.local else "batch"),
            memory_size=MEMORY_MB,
            timeout=TIMEOUT,
            ephemeral_storage_size=Size.gibibytes(10),  # Parquet input is spooled here (it needs random access)
            role=role,
            log_group=log_group,
            description="Diabetes Risk: score files dropped under inbox/",
            environment={
                "DR_BATCH_BUCKET": bucket_name("batch"),
                "DR_ARTIFACTS_BUCKET": bucket_name("artifacts"),
                "DR_ORT_THREADS": "1",  # the other vCPU reads and checks the next chunk
                "DR_DRIFT_STARTS_TRAINING": "true" if config.drift_retrain else "false",
                "DR_STATE_MACHINE_ARN": state_machine.state_machine_arn,
                "DR_IDEMPOTENCY_TABLE": self.idempotency.table_name,
                "DR_DATA_BUCKET": bucket_name("data"),
                "POWERTOOLS_SERVICE_NAME": "diabetes-risk-batch",
                "POWERTOOLS_METRICS_NAMESPACE": "DiabetesRisk",
                "POWERTOOLS_LOG_LEVEL": "INFO",
                "POWERTOOLS_TRACE_DISABLED": "true" if config.local else "false",
            },
            tracing=lambda_.Tracing.DISABLED if config.local else lambda_.Tracing.ACTIVE,
        )
        # the idempotency table uses batch's key; the offline measurements go to the data bucket
        storage.grant_keys(self.function.role, read=("artifacts",), write=("batch", "data"))
        self.idempotency.grant(
            self.function, "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"
        )
        # S3 invokes asynchronously: two retries on errors, then the event goes to the dead-letter queue (with the
        # error), which `diabetes-risk score --wait` reads and an alarm watches.
        self.function.configure_async_invoke(
            retry_attempts=2,
            max_event_age=Duration.hours(6),
            on_failure=destinations.SqsDestination(self.dead_letters),
        )
        dead_letter_alarm(self, "BatchDeadLetterAlarm", self.dead_letters, "A dropped file was given up on")
        invoke_on_created(self, "BatchBucketInvokes", storage.batch, "batch", self.function, "inbox/")
        alarm(
            self,
            "BatchScoreErrors",
            "The batch-score function failed (the file's outbox folder has failed.json)",
            self.function.metric_errors(period=Duration.minutes(5), statistic="Sum"),
        )
        alarm(
            self,
            "BatchDrift",
            "A scored batch drifted from the champion's training data (see its manifest)",
            cloudwatch.Metric(
                namespace="DiabetesRisk",
                metric_name="DriftDetected",
                dimensions_map={"service": "batch"},
                period=Duration.hours(1),
                statistic="Sum",
            ),
        )
        NagSuppressions.add_resource_suppressions(
            role,
            [
                {
                    "id": "AwsSolutions-IAM5",
                    "reason": "Files arrive under inbox/ and results are written under outbox/ and quarantine/ at "
                    "run time; each wildcard is one prefix of one bucket (or the model versions, or one log group).",
                }
            ],
            apply_to_children=True,
        )
        NagSuppressions.add_resource_suppressions(
            self.function,
            [{"id": "AwsSolutions-L1", "reason": "python3.13 on purpose: matches the project and the local cloud."}],
        )
