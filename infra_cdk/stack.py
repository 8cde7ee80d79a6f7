"""The Diabetes Risk stack: storage, the training pipeline, the prediction API and batch scoring."""

from __future__ import annotations

from aws_cdk import CfnOutput, Stack
from constructs import Construct

from .batch import BatchScoring
from .config import DeployConfig
from .serving import PredictionApi
from .storage import Storage
from .training import TrainingPipeline


class DiabetesRiskStack(Stack):
    def __init__(self, scope: Construct, construct_id: str, config: DeployConfig, **kwargs) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.storage = Storage(self, "Storage", config)
        self.training = TrainingPipeline(self, "Training", config, self.storage)
        self.serving = PredictionApi(self, "Serving", config)
        self.batch = BatchScoring(self, "Batch", config, self.storage, self.training.state_machine)
        CfnOutput(self, "ApiId", value=self.serving.api.rest_api_id)
        CfnOutput(self, "ApiUrl", value=self.serving.api.url)
        CfnOutput(self, "DataBucket", value=self.storage.data.bucket_name)
        CfnOutput(self, "ArtifactsBucket", value=self.storage.artifacts.bucket_name)
        CfnOutput(self, "BatchBucket", value=self.storage.batch.bucket_name)
        CfnOutput(self, "TrainingStateMachineArn", value=self.training.state_machine.state_machine_arn)
        CfnOutput(self, "BatchFunctionName", value=self.batch.function.function_name)
