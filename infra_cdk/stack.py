"""The Diabetes Risk stack: storage, the training pipeline, the prediction API and batch scoring."""

from __future__ import annotations

from aws_cdk import CfnOutput, Stack
from constructs import Construct

from .batch import BatchScoring
from .config import DeployConfig
from .monitoring import Monitoring
from .serving import PredictionApi
from .storage import Storage
from .training import TrainingPipeline


class DiabetesRiskStack(Stack):
    def __init__(self, scope: Construct, construct_id: str, config: DeployConfig, **kwargs) -> None:
        super().__init__(scope, construct_id, **kwargs)
        # cfn-lint (and `sam validate --lint`, which has no other way to take a setting) reads this: W3005 flags the
        # DependsOn that CDK itself adds from each function to its role next to the GetAtt; it is redundant, not wrong.
        self.template_options.metadata = {"cfn-lint": {"config": {"ignore_checks": ["W3005"]}}}
        self.storage = Storage(self, "Storage", config)
        self.training = TrainingPipeline(self, "Training", config, self.storage)
        self.serving = PredictionApi(self, "Serving", config, self.storage)
        self.batch = BatchScoring(self, "Batch", config, self.storage, self.training.state_machine)
        sources = {
            "Predict": self.serving.log_group,
            "Authorizer": self.serving.auth.log_group,
            "BatchScore": self.batch.log_group,
            **self.training.log_groups,
        }
        self.monitoring = Monitoring(self, "Monitoring", config, sources)
        self.monitoring.notify_all_alarms(self)
        CfnOutput(self, "ApiId", value=self.serving.api.rest_api_id)
        CfnOutput(self, "ApiUrl", value=self.serving.api.url)
        CfnOutput(self, "TokenIssuer", value=self.serving.auth.issuer)
        CfnOutput(self, "ApiClients", value=config.clients)
        if self.serving.auth.user_pool is not None:
            CfnOutput(self, "UserPoolId", value=self.serving.auth.user_pool.user_pool_id)
            CfnOutput(self, "TokenEndpoint", value=self.serving.auth.token_endpoint)
        CfnOutput(self, "DataBucket", value=self.storage.data.bucket_name)
        for kind, key in self.storage.keys.items():
            CfnOutput(self, f"{kind.title()}KeyArn", value=key.key_arn)
        CfnOutput(self, "ArtifactsBucket", value=self.storage.artifacts.bucket_name)
        CfnOutput(self, "BatchBucket", value=self.storage.batch.bucket_name)
        CfnOutput(self, "TrainingStateMachineArn", value=self.training.state_machine.state_machine_arn)
        CfnOutput(self, "BatchFunctionName", value=self.batch.function.function_name)
        CfnOutput(self, "BatchDeadLetterQueueUrl", value=self.batch.dead_letters.queue_url)
        CfnOutput(self, "StartDeadLetterQueueUrl", value=self.training.start_dead_letters.queue_url)
        CfnOutput(self, "IdempotencyTableName", value=self.batch.idempotency.table_name)
        CfnOutput(self, "OnlineFeaturesTable", value=self.storage.online_features.table_name)
        CfnOutput(self, "OnlineTableTemplate", value=self.storage.online_table_template)
        CfnOutput(self, "AlarmTopicArn", value=self.monitoring.topic.topic_arn)
        CfnOutput(self, "MetricsBridgeFunctionName", value=self.monitoring.function.function_name)
        if self.monitoring.workspace is not None:
            CfnOutput(self, "PrometheusWorkspaceEndpoint", value=self.monitoring.workspace.attr_prometheus_endpoint)
