"""Online serving: the predict Lambda (ONNX, no scikit-learn) behind an API Gateway REST API, with OAuth
client-credentials tokens checked by a Lambda authorizer, throttling, per-client usage plans on AWS, gateway
responses in the API's error format, access logs, and alarms on 5xx and p99 latency."""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_codedeploy as codedeploy
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from cdk_nag import NagSuppressions
from constructs import Construct

from .alarms import alarm
from .auth import ApiAuth
from .bundling import function_code
from .config import DeployConfig
from .storage import Storage, bucket_arn, bucket_name

MOCK_CONTENT_TYPES = (
    "application/json",
    "text/plain",
    "application/x-www-form-urlencoded",
    "multipart/form-data",
    "application/xml",
    "text/xml",
    "application/octet-stream",
)


class PredictionApi(Construct):
    def __init__(self, scope: Construct, construct_id: str, config: DeployConfig, storage: Storage) -> None:
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
            tracing=lambda_.Tracing.DISABLED if config.local else lambda_.Tracing.ACTIVE,
            description="Diabetes Risk: ONNX prediction API",
            environment={
                "DR_ARTIFACTS_BUCKET": bucket_name("artifacts"),
                "DR_MODEL_REFRESH_S": str(config.refresh_s),
                "DR_SHADOW_FLUSH_S": "1" if config.local else "10",
                "DR_S3_CLIENT": "light",
                # pydantic looks for plugins (observability hooks, none used here) by reading every installed
                # package's entry points at the first model it builds: ≈ 12 ms of the cold start (by hand, 11 fresh
                # processes each way with bench_loop's harness)
                "PYDANTIC_DISABLE_PLUGINS": "__all__",
                "DR_ONLINE_TABLE": storage.online_features.table_name,
                "POWERTOOLS_SERVICE_NAME": "diabetes-risk-predict",
                "POWERTOOLS_METRICS_NAMESPACE": "DiabetesRisk",
                "POWERTOOLS_LOG_LEVEL": "INFO",
                "POWERTOOLS_LOGGER_SAMPLE_RATE": "0.01",  # 1% of invocations also log their DEBUG lines
                "POWERTOOLS_TRACE_DISABLED": "true" if config.local else "false",
            },
        )
        storage.grant_keys(role, read=("artifacts",))
        storage.grant_online_features(role, write=False)  # POST /predict {"patient_id"}: one GetItem
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
        self.auth = ApiAuth(self, "Auth", config)
        # On AWS the API calls the `live` alias, which CodeDeploy moves to a new code version by canary (below);
        # the local cloud has no CodeDeploy, so there the API calls the function (the model-level canary still runs).
        self.alias = (
            None
            if config.local
            else lambda_.Alias(self, "PredictLive", alias_name="live", version=self.function.current_version)
        )
        integration = apigw.LambdaIntegration(self.alias or self.function, proxy=True)
        # API keys are not authentication (AWS says so): on AWS they only tie a client to its usage plan.
        need_key = not config.local or config.api_key
        routes = [
            ("predict", "POST", True),
            ("health", "GET", False),
            ("model", "GET", True),
            ("openapi.json", "GET", False),
        ]
        for path, method, protected in routes:
            resource = self.api.root.add_resource(path)
            resource.add_method(
                method,
                integration,
                api_key_required=need_key and protected,
                authorizer=self.auth.authorizer if protected else None,
                authorization_type=apigw.AuthorizationType.CUSTOM if protected else apigw.AuthorizationType.NONE,
            )
            self._method_not_allowed(resource, path, method)
        self._gateway_responses()
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
        if self.alias is not None:
            self._canary_release()
        self._suppressions()

    def _canary_release(self) -> None:
        """A code release of the predict function: CodeDeploy shifts 10 % of the `live` alias to the new version for
        5 minutes, then the rest, and rolls back by itself if a 5xx, latency or error alarm fires meanwhile. These
        alarms look at 1-minute periods, so they can fire within the 5-minute bake (the 5-minute ones above cannot)."""
        one_minute = Duration.minutes(1)
        alarms = [
            alarm(
                self,
                "ReleaseApi5xx",
                "During a release: the prediction API answered 5xx",
                self.api.metric_server_error(period=one_minute, statistic="Sum"),
            ),
            alarm(
                self,
                "ReleaseApiLatencyP99",
                "During a release: p99 latency of the prediction API above 1 s for 2 minutes",
                self.api.metric_latency(period=one_minute, statistic="p99"),
                1000,
                2,
                cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            ),
            alarm(
                self,
                "ReleaseLiveErrors",
                "During a release: the live alias (old and new version) raised errors",
                self.alias.metric_errors(period=one_minute, statistic="Sum"),
            ),
        ]
        self.deployment_group = codedeploy.LambdaDeploymentGroup(
            self,
            "PredictRelease",
            alias=self.alias,
            deployment_config=codedeploy.LambdaDeploymentConfig.CANARY_10_PERCENT_5_MINUTES,
            alarms=alarms,
            auto_rollback=codedeploy.AutoRollbackConfig(
                failed_deployment=True, stopped_deployment=True, deployment_in_alarm=True
            ),
        )
        NagSuppressions.add_resource_suppressions(
            self.deployment_group,
            [
                {
                    "id": "AwsSolutions-IAM4",
                    "reason": "CodeDeploy's service role uses the AWS-managed AWSCodeDeployRoleForLambdaLimited "
                    "policy, "
                    "scoped by AWS to aliases and alarms.",
                }
            ],
            apply_to_children=True,
        )

    @staticmethod
    def _method_not_allowed(resource: apigw.Resource, path: str, allowed: str) -> None:
        """Any other method on a declared path: 405 with `Allow` and the API's error body (RFC 9110), answered
        by API Gateway itself (a mock integration), never reaching the function."""
        body = (
            f'{{"error": "method $context.httpMethod not allowed on /{path}", '
            f'"details": [{{"field": "method", "message": "allowed: {allowed}"}}]}}'
        )
        # A mock integration needs a template that yields the status for every content type a client may send;
        # NEVER: any other content type is API Gateway's 415 (UNSUPPORTED_MEDIA_TYPE, in the API's format).
        selector = '{"statusCode": 405}'
        resource.add_method(
            "ANY",
            apigw.MockIntegration(
                request_templates={t: selector for t in MOCK_CONTENT_TYPES},
                passthrough_behavior=apigw.PassthroughBehavior.NEVER,
                integration_responses=[
                    apigw.IntegrationResponse(
                        status_code="405",
                        response_templates={"application/json": body},
                        response_parameters={"method.response.header.Allow": f"'{allowed}'"},
                    )
                ],
            ),
            method_responses=[
                apigw.MethodResponse(status_code="405", response_parameters={"method.response.header.Allow": True})
            ],
        )

    def _gateway_responses(self) -> None:
        """API Gateway's own refusals in the API's error format (`{"error", "details"}`), not its bare
        `{"message"}`; an undeclared route or method is a 404, not AWS's 403 "Missing Authentication Token"."""
        hint = "send Authorization: Bearer <token> (an OAuth client-credentials access token)"
        responses = {
            "UNAUTHORIZED": ("401", "missing, invalid or expired access token", "Authorization", hint),
            "ACCESS_DENIED": (
                "403",
                "this client's token does not allow this request",
                "scope",
                "the token's scopes: $context.authorizer.scope",
            ),
            "MISSING_AUTHENTICATION_TOKEN": (
                "404",
                "no route $context.httpMethod $util.escapeJavaScript($context.path)",
                "route",
                "routes: POST /predict, GET /model, GET /health, GET /openapi.json",
            ),
            "UNSUPPORTED_MEDIA_TYPE": ("415", "unsupported Content-Type", "Content-Type", "send application/json"),
            "THROTTLED": ("429", "too many requests", "rate", "slow down and retry after a short wait"),
            "QUOTA_EXCEEDED": ("429", "daily request quota exceeded", "quota", "the quota resets daily"),
            "AUTHORIZER_CONFIGURATION_ERROR": ("500", "authorization is unavailable", "authorizer", "retry later"),
            "AUTHORIZER_FAILURE": ("500", "authorization is unavailable", "authorizer", "retry later"),
            # everything else API Gateway refuses itself (an API key, a body too large, a timeout), same format
            "DEFAULT_4XX": (None, "$util.escapeJavaScript($context.error.message)", "request", "see error"),
            "DEFAULT_5XX": (None, "$util.escapeJavaScript($context.error.message)", "server", "retry later"),
        }
        headers = {
            "UNAUTHORIZED": {"WWW-Authenticate": "'Bearer realm=\"diabetes-risk\"'"},
            "THROTTLED": {"Retry-After": "'1'"},
        }
        for kind, (status, message, field, detail) in responses.items():
            template = (
                f'{{"error": "{message}", "details": [{{"field": "{field}", "message": "{detail}"}}], '
                '"request_id": "$context.requestId"}'
            )
            self.api.add_gateway_response(
                kind.title().replace("_", ""),
                type=getattr(apigw.ResponseType, kind.replace("4XX", "4_XX").replace("5XX", "5_XX")),
                status_code=status,
                templates={"application/json": template},
                response_headers=headers.get(kind),
            )

    def _suppressions(self) -> None:
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
                    "reason": "/predict and /model use the token authorizer; /health and /openapi.json are public "
                    "by design (a load balancer's health check, the API's own description).",
                },
                {
                    "id": "AwsSolutions-COG4",
                    "reason": "A Lambda TOKEN authorizer checks the Cognito-issued JWTs (issuer, client, expiry, "
                    "scope) the same way on AWS and on the local cloud, which has no Cognito.",
                },
            ],
            apply_to_children=True,
        )
