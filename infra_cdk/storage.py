"""Buckets: data (versioned: every dataset version stays addressable), artifacts (runs, models, the
serving pointer), batch (inbox/outbox/quarantine, versioned). All encrypted, public access blocked, TLS only,
access-logged."""

from __future__ import annotations

from aws_cdk import Aws, Duration, RemovalPolicy
from aws_cdk import aws_s3 as s3
from cdk_nag import NagSuppressions
from constructs import Construct

from .config import DeployConfig


def bucket_name(kind: str) -> str:
    """Fixed names (account and region make them unique), so policies can name a bucket without a
    reference to it: that keeps the S3 → Lambda notification free of dependency cycles."""
    return f"diabetes-risk-{kind}-{Aws.ACCOUNT_ID}-{Aws.REGION}"


def bucket_arn(kind: str, path: str = "") -> str:
    return f"arn:{Aws.PARTITION}:s3:::{bucket_name(kind)}{path}"


class Storage(Construct):
    def __init__(self, scope: Construct, construct_id: str, config: DeployConfig) -> None:
        super().__init__(scope, construct_id)
        removal = RemovalPolicy.DESTROY if config.local else RemovalPolicy.RETAIN
        common = dict(
            encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            removal_policy=removal,
        )
        self.logs = s3.Bucket(
            self,
            "AccessLogs",
            bucket_name=bucket_name("access-logs"),
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_PREFERRED,
            **common,
        )
        NagSuppressions.add_resource_suppressions(
            self.logs,
            [
                {
                    "id": "AwsSolutions-S1",
                    "reason": "This is the access-log bucket; logging it to itself would loop.",
                }
            ],
        )

        def bucket(kind: str, **extra) -> s3.Bucket:
            return s3.Bucket(
                self,
                kind.title(),
                bucket_name=bucket_name(kind),
                server_access_logs_bucket=self.logs,
                server_access_logs_prefix=f"{kind}/",
                **common,
                **extra,
            )

        self.data = bucket("data", versioned=True)
        self.artifacts = bucket("artifacts")
        # Versioned: each upload of a file is scored once (results are per object version), and a file moved to
        # quarantine/ keeps its original version. Old versions expire.
        self.batch = bucket(
            "batch",
            versioned=True,
            lifecycle_rules=[s3.LifecycleRule(noncurrent_version_expiration=Duration.days(90))],
        )
