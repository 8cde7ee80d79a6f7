"""Online serving: the predict Lambda (ONNX, no scikit-learn) behind an API Gateway REST API, with
throttling, an API key and usage plan on AWS, access logs, and alarms on 5xx and p99 latency."""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from cdk_nag import NagSuppressions
from constructs import Construct

from .alarms import alarm
from .bundling import function_code
from .config import DeployConfig
from .storage import bucket_arn, bucket_name


class PredictionApi(Construct):
    def __init__(self, scope: Construct, construct_id: str, config: DeployConfig) -> None:
        super().__init__(scope, construct_id)
        log_group = logs.LogGroup(
            self, "PredictLogs", retention=logs.RetentionDays.ONE_MONTH, removal_policy=RemovalPolicy.DESTROY
        )
        self.log_group = log_group
        role = iam.Role(self, "PredictRole", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"))
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["s3:GetObject"],
                resources=[bucket_arn("artifacts", "/serving/champion.json"), bucket_arn("artifacts", "/models/*")],
            )
        )
        role.add_to_policy(iam.PolicyStatement(actions=["s3:ListBucket"], resources=[bucket_arn("artifacts")]))
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["logs:CreateLogStream", "logs:PutLogEvents"], resources=[f"{log_group.log_group_arn}:*"]
            )
        )
        self.function = lambda_.Function(
            self,
            "Predict",
            runtime=lambda_.Runtime.PYTHON_3_13,
            handler="predict.app.handler",
            code=function_code(None if config.local else "predict"),
            memory_size=1024,
            timeout=Duration.seconds(10),
            role=role,
            log_group=log_group,
            description="Diabetes Risk: ONNX prediction API",
            environment={
                "DR_ARTIFACTS_BUCKET": bucket_name("artifacts"),
                "DR_MODEL_REFRESH_S": "60",
                "POWERTOOLS_SERVICE_NAME": "diabetes-risk-predict",
                "POWERTOOLS_METRICS_NAMESPACE": "DiabetesRisk",
                "POWERTOOLS_LOG_LEVEL": "INFO",
                "POWERTOOLS_LOGGER_SAMPLE_RATE": "0.01",  # 1% of invocations also log their DEBUG lines
            },
        )
        access_logs = logs.LogGroup(
            self, "ApiAccessLogs", retention=logs.RetentionDays.ONE_MONTH, removal_policy=RemovalPolicy.DESTROY
        )
        self.api = apigw.RestApi(
            self,
            "Api",
            rest_api_name="diabetes-risk",
            description="Diabetes risk prediction API",
            cloud_watch_role=True,
            deploy_options=apigw.StageOptions(
                stage_name="prod",
                throttling_rate_limit=50,
                throttling_burst_limit=100,
                metrics_enabled=True,
                logging_level=apigw.MethodLoggingLevel.ERROR,
                data_trace_enabled=False,  # no patient data in logs
                access_log_destination=apigw.LogGroupLogDestination(access_logs),
                access_log_format=apigw.AccessLogFormat.json_with_standard_fields(
                    caller=False,
                    http_method=True,
                    ip=False,
                    protocol=True,
                    request_time=True,
                    resource_path=True,
                    response_length=True,
                    status=True,
                    user=False,
                ),
            ),
        )
        integration = apigw.LambdaIntegration(self.function, proxy=True)
        need_key = not config.local or config.api_key
        routes = [
            ("predict", "POST", need_key),
            ("health", "GET", False),
            ("model", "GET", need_key),
            ("openapi.json", "GET", False),
        ]
        for path, method, key in routes:
            self.api.root.add_resource(path).add_method(method, integration, api_key_required=key)
        if need_key:
            plan = self.api.add_usage_plan(
                "UsagePlan",
                name="diabetes-risk-clients",
                throttle=apigw.ThrottleSettings(rate_limit=20, burst_limit=40),
                quota=apigw.QuotaSettings(limit=100_000, period=apigw.Period.DAY),
            )
            plan.add_api_stage(stage=self.api.deployment_stage)
            plan.add_api_key(self.api.add_api_key("ClientKey", api_key_name="diabetes-risk-client"))

        five_minutes = Duration.minutes(5)
        alarm(
            self,
            "Api5xx",
            "The prediction API answered 5xx",
            self.api.metric_server_error(period=five_minutes, statistic="Sum"),
        )
        alarm(
            self,
            "ApiLatencyP99",
            "p99 latency of the prediction API above 1 s",
            self.api.metric_latency(period=five_minutes, statistic="p99"),
            1000,
            3,
            cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
        )
        alarm(
            self,
            "PredictErrors",
            "The predict function raised errors",
            self.function.metric_errors(period=five_minutes, statistic="Sum"),
        )
        self._suppressions(need_key)

    def _suppressions(self, keyed: bool) -> None:
        NagSuppressions.add_resource_suppressions(
            self.function.role,
            [
                {
                    "id": "AwsSolutions-IAM5",
                    "reason": "Model files are versioned under models/v<N>/; log streams are created at run time.",
                }
            ],
            apply_to_children=True,
        )
        NagSuppressions.add_resource_suppressions(
            self.function,
            [
                {
                    "id": "AwsSolutions-L1",
                    "reason": "python3.13 on purpose: matches the project and the local cloud.",
                }
            ],
        )
        NagSuppressions.add_resource_suppressions(
            self.api,
            [
                {
                    "id": "AwsSolutions-IAM4",
                    "reason": "API Gateway's account role for CloudWatch uses the AWS-managed "
                    "AmazonAPIGatewayPushToCloudWatchLogs policy by design.",
                },
                {
                    "id": "AwsSolutions-APIG2",
                    "reason": "Bodies are validated in the function (pydantic) with per-field "
                    "4xx details that gateway request validation cannot give.",
                },
                {
                    "id": "AwsSolutions-APIG3",
                    "reason": "WAF is an account-level choice; throttling and usage plans limit abuse here.",
                },
                {
                    "id": "AwsSolutions-APIG4",
                    "reason": "Clients authenticate with an API key and usage plan on AWS; "
                    "health and OpenAPI are public by design."
                    if keyed
                    else "Local cloud only: loopback, no credentials.",
                },
                {
                    "id": "AwsSolutions-COG4",
                    "reason": "No Cognito: API keys identify client applications; an identity "
                    "provider belongs in front of the clinical app.",
                },
            ],
            apply_to_children=True,
        )
