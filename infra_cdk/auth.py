"""Who may call the prediction API: OAuth 2.0 client-credentials tokens checked by a Lambda TOKEN authorizer.

The issuer differs by target and nothing else does: on AWS a Cognito user pool with a resource server
(`diabetes-risk/predict`, `diabetes-risk/model:read`) and one app client per clinic system; on the local
cloud (community LocalStack has no Cognito) a key pair that `diabetes-risk deploy` keeps in the local cloud
(private key in Secrets Manager, JWKS in SSM). The authorizer function and API Gateway's use of it are the same.
"""

from __future__ import annotations

from aws_cdk import Aws, Duration, RemovalPolicy, Stack
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_cognito as cognito
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from cdk_nag import NagSuppressions
from constructs import Construct

from auth.issuer import jwks_parameter, local_issuer
from auth.tokens import RESOURCE_SERVER, SCOPES

from .bundling import function_code
from .config import DeployConfig


class ApiAuth(Construct):
    def __init__(self, scope: Construct, construct_id: str, config: DeployConfig) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        self.log_group = logs.LogGroup(
            self, "AuthorizerLogs", retention=logs.RetentionDays.ONE_MONTH, removal_policy=RemovalPolicy.DESTROY
        )
        role = iam.Role(self, "AuthorizerRole", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"))
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["logs:CreateLogStream", "logs:PutLogEvents"], resources=[f"{self.log_group.log_group_arn}:*"]
            )
        )
        self.token_endpoint: str | None = None
        if config.local:
            self.user_pool = None
            self.issuer = local_issuer(config.stack_name)
            parameter = jwks_parameter(config.stack_name)
            jwks = f"ssm:{parameter}"
            clients = {name: name for name in config.client_scopes}
            role.add_to_policy(
                iam.PolicyStatement(
                    actions=["ssm:GetParameter"],
                    resources=[f"arn:{Aws.PARTITION}:ssm:{Aws.REGION}:{Aws.ACCOUNT_ID}:parameter{parameter}"],
                )
            )
        else:
            self.user_pool, clients = self._cognito(config)
            self.issuer = f"https://cognito-idp.{Aws.REGION}.amazonaws.com/{self.user_pool.user_pool_id}"
            jwks = f"{self.issuer}/.well-known/jwks.json"
        self.function = lambda_.Function(
            self,
            "Authorizer",
            runtime=lambda_.Runtime.PYTHON_3_13,
            handler="authorizer.app.handler",
            code=function_code(None if config.local else "authorizer"),
            memory_size=256,
            # 5 s is ample on AWS (a cold start there is well under a second). The local cloud starts a host
            # process per concurrent request on a laptop's cores: fifty clients at once queue fifty cold starts.
            timeout=Duration.seconds(30 if config.local else 5),
            role=role,
            log_group=self.log_group,
            tracing=lambda_.Tracing.DISABLED if config.local else lambda_.Tracing.ACTIVE,
            description="Diabetes Risk: API token authorizer (JWT, RS256)",
            environment={
                "DR_AUTH_ISSUER": self.issuer,
                "DR_AUTH_JWKS": jwks,
                "DR_AUTH_CLIENTS": stack.to_json_string(clients),
                "POWERTOOLS_SERVICE_NAME": "diabetes-risk-authorizer",
                "POWERTOOLS_METRICS_NAMESPACE": "DiabetesRisk",
                "POWERTOOLS_TRACE_DISABLED": "true" if config.local else "false",
            },
        )
        self.authorizer = apigw.TokenAuthorizer(
            self,
            "TokenAuthorizer",
            handler=self.function,
            authorizer_name="diabetes-risk-jwt",
            identity_source="method.request.header.Authorization",
            validation_regex=r"^Bearer [-0-9A-Za-z_]+\.[-0-9A-Za-z_]+\.[-0-9A-Za-z_]+$",
            results_cache_ttl=Duration.seconds(config.authorizer_cache_s),
        )
        NagSuppressions.add_resource_suppressions(
            role,
            [{"id": "AwsSolutions-IAM5", "reason": "Log streams are created at run time."}],
            apply_to_children=True,
        )
        NagSuppressions.add_resource_suppressions(
            self.function,
            [{"id": "AwsSolutions-L1", "reason": "python3.13 on purpose: matches the project and the local cloud."}],
        )

    def _cognito(self, config: DeployConfig) -> tuple[cognito.UserPool, dict]:
        pool = cognito.UserPool(
            self,
            "Clients",
            user_pool_name=f"{config.stack_name}-api-clients",
            self_sign_up_enabled=False,
            password_policy=cognito.PasswordPolicy(
                min_length=12, require_digits=True, require_lowercase=True, require_uppercase=True, require_symbols=True
            ),
            removal_policy=RemovalPolicy.RETAIN,
        )
        server = pool.add_resource_server(
            "Api",
            identifier=RESOURCE_SERVER,
            scopes=[cognito.ResourceServerScope(scope_name=s, scope_description=f"call {s}") for s in SCOPES],
        )
        domain = pool.add_domain(
            "TokenEndpoint",
            cognito_domain=cognito.CognitoDomainOptions(domain_prefix=f"{config.stack_name.lower()}-{Aws.ACCOUNT_ID}"),
        )
        self.token_endpoint = f"{domain.base_url()}/oauth2/token"
        clients = {}
        for name, allowed in config.client_scopes.items():
            client = pool.add_client(
                f"Client-{name}",
                user_pool_client_name=name,
                generate_secret=True,
                o_auth=cognito.OAuthSettings(
                    flows=cognito.OAuthFlows(client_credentials=True),
                    scopes=[
                        cognito.OAuthScope.resource_server(
                            server, cognito.ResourceServerScope(scope_name=s, scope_description=s)
                        )
                        for s in allowed
                    ],
                ),
                access_token_validity=Duration.hours(1),
            )
            clients[client.user_pool_client_id] = name
        NagSuppressions.add_resource_suppressions(
            pool,
            [
                {
                    "id": "AwsSolutions-COG2",
                    "reason": "Machine-to-machine clients only (client credentials): no users.",
                },
                {"id": "AwsSolutions-COG3", "reason": "No user sign-ins to protect: app clients with secrets only."},
            ],
            apply_to_children=True,
        )
        return pool, clients
