"""Buckets: data (versioned: every dataset version stays addressable), artifacts (runs, models, the
serving pointer), batch (inbox/outbox/quarantine, versioned). Public access blocked, TLS only, access-logged;
the three that hold patient data are encrypted with a customer-managed KMS key each (rotation on), and a
function may use a key only if it touches that bucket (`grant_keys`)."""

from __future__ import annotations

from aws_cdk import Aws, Duration, RemovalPolicy
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3
from cdk_nag import NagSuppressions
from constructs import Construct

from inference_core.feature_layout import online_table_name

from .config import DeployConfig


def bucket_name(kind: str) -> str:
    """Fixed names (account and region make them unique), so policies can name a bucket without a
    reference to it: that keeps the S3 → Lambda notification free of dependency cycles."""
    return f"diabetes-risk-{kind}-{Aws.ACCOUNT_ID}-{Aws.REGION}"


def bucket_arn(kind: str, path: str = "") -> str:
    return f"arn:{Aws.PARTITION}:s3:::{bucket_name(kind)}{path}"


def invoke_on_created(
    scope: Construct, permission_id: str, bucket: s3.Bucket, kind: str, function: lambda_.IFunction, prefix: str
) -> None:
    """S3 → Lambda for objects created under `prefix`, declared on the bucket itself: CDK's notification custom
    resource does not run on the local cloud, and fixed bucket names keep this free of dependency cycles."""
    permission = lambda_.CfnPermission(
        scope,
        permission_id,
        action="lambda:InvokeFunction",
        function_name=function.function_arn,
        principal="s3.amazonaws.com",
        source_arn=bucket_arn(kind),
        source_account=Aws.ACCOUNT_ID,
    )
    cfn_bucket: s3.CfnBucket = bucket.node.default_child
    existing = cfn_bucket.notification_configuration
    earlier = list(existing.lambda_configurations or []) if existing else []  # one bucket, several prefixes
    cfn_bucket.notification_configuration = s3.CfnBucket.NotificationConfigurationProperty(
        lambda_configurations=[
            *earlier,
            s3.CfnBucket.LambdaConfigurationProperty(
                event="s3:ObjectCreated:*",
                function=function.function_arn,
                filter=s3.CfnBucket.NotificationFilterProperty(
                    s3_key=s3.CfnBucket.S3KeyFilterProperty(
                        rules=[s3.CfnBucket.FilterRuleProperty(name="prefix", value=prefix)]
                    )
                ),
            ),
        ]
    )
    cfn_bucket.add_dependency(permission)


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
            # ACLs off: S3 log delivery is granted by a bucket policy (CDK writes it), not the legacy
            # LogDeliveryWrite ACL that cfn-lint flags (W3045).
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
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

        # One key per bucket of patient data, so a grant names exactly what a function touches. The key policy
        # is CDK's default (the account administers the key; use is granted to each function's role by IAM).
        self.keys: dict[str, kms.Key] = {
            kind: kms.Key(
                self,
                f"{kind.title()}Key",
                alias=f"alias/{config.stack_name.lower()}-{kind}",
                description=f"Diabetes Risk: the {kind} bucket's objects"
                if kind != "features"
                else "Diabetes Risk: the features table (the online feature store's items)",
                enable_key_rotation=True,
                removal_policy=removal,
                pending_window=Duration.days(7) if config.local else None,
            )
            for kind in ("data", "artifacts", "batch", "features")  # features: the online store's table only
        }

        def bucket(kind: str, **extra) -> s3.Bucket:
            settings = {**common, "encryption": s3.BucketEncryption.KMS, "encryption_key": self.keys[kind]}
            return s3.Bucket(
                self,
                kind.title(),
                bucket_name=bucket_name(kind),
                server_access_logs_bucket=self.logs,
                server_access_logs_prefix=f"{kind}/",
                bucket_key_enabled=True,  # S3 asks KMS once per bucket key, not per object
                **settings,
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

        # Feast's DynamoDB online store: one item per patient (the latest measurement), written by Feast's
        # materialisation, read by the prediction function. Patient data, under its own key: the prediction function
        # may decrypt the table without being able to decrypt the data bucket's datasets.
        self.online_table_template = f"{config.stack_name}.{{project}}.{{table_name}}"
        self.online_features = dynamodb.Table(
            self,
            "OnlineFeatures",
            table_name=online_table_name(self.online_table_template),
            partition_key=dynamodb.Attribute(name="entity_id", type=dynamodb.AttributeType.STRING),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=not config.local
            ),
            removal_policy=removal,
            encryption=dynamodb.TableEncryption.CUSTOMER_MANAGED,
            encryption_key=self.keys["features"],
        )

    def grant_online_features(self, role: iam.IGrantable, write: bool) -> None:
        """Read (the prediction function) or Feast's materialisation and apply (describe, tags, batch writes)."""
        actions = ["dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:DescribeTable"]
        if write:
            actions += ["dynamodb:BatchWriteItem", "dynamodb:PutItem", "dynamodb:ListTagsOfResource"]
        self.online_features.grant(role, *actions)
        self.grant_keys(role, read=("features",), write=("features",) if write else ())

    def grant_keys(self, role: iam.IGrantable, read: tuple[str, ...] = (), write: tuple[str, ...] = ()) -> None:
        """Decrypt for the buckets a function reads, encrypt and decrypt for those it writes; nothing else."""
        for kind in write:
            self.keys[kind].grant_encrypt_decrypt(role)
        for kind in read:
            if kind not in write:
                self.keys[kind].grant_decrypt(role)
