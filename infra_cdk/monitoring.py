"""Monitoring: the metrics bridge (CloudWatch Logs subscription → Prometheus remote write), subscribed to the
log groups of every function that emits EMF metrics (never its own); on AWS an Amazon Managed Service for
Prometheus workspace with the project's alert rules and an alert manager that publishes to the alarm topic;
the SNS alarm topic every CloudWatch alarm of the stack notifies."""

from __future__ import annotations

import yaml
from aws_cdk import Duration, Fn, RemovalPolicy, Stack
from aws_cdk import aws_aps as aps
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_logs_destinations as destinations
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from cdk_nag import NagSuppressions
from constructs import Construct

from observability.config import rule_files

from .alarms import alarm
from .bundling import function_code
from .config import DeployConfig

# Only EMF records are worth a bridge invocation (AWS applies this; LocalStack ignores patterns, the bridge
# filters in code as well).
EMF_FILTER = logs.FilterPattern.literal("{ $._aws.Timestamp > 0 }")


def rules_yaml() -> str:
    """All rule files as one AMP rule groups namespace document."""
    groups = []
    for path in rule_files():
        groups += yaml.safe_load(path.read_text())["groups"]
    return yaml.safe_dump({"groups": groups}, sort_keys=False)


class Monitoring(Construct):
    def __init__(
        self, scope: Construct, construct_id: str, config: DeployConfig, sources: dict[str, logs.ILogGroup]
    ) -> None:
        super().__init__(scope, construct_id)
        self.topic = sns.Topic(self, "Alarms", display_name="Diabetes Risk alarms", enforce_ssl=True)
        if config.alarm_email:
            self.topic.add_subscription(subscriptions.EmailSubscription(config.alarm_email))

        log_group = logs.LogGroup(
            self, "BridgeLogs", retention=logs.RetentionDays.ONE_MONTH, removal_policy=RemovalPolicy.DESTROY
        )
        self.log_group = log_group
        role = iam.Role(self, "BridgeRole", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"))
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["logs:CreateLogStream", "logs:PutLogEvents"], resources=[f"{log_group.log_group_arn}:*"]
            )
        )
        env = {
            "POWERTOOLS_SERVICE_NAME": "diabetes-risk-metrics-bridge",
            "POWERTOOLS_METRICS_NAMESPACE": "DiabetesRisk",
            "POWERTOOLS_LOG_LEVEL": "INFO",
            "DR_REMOTE_WRITE_TIMEOUT_S": "2",
        }
        self.workspace = None
        if config.local:
            env["DR_REMOTE_WRITE_URL"] = config.remote_write_url
        else:
            self.workspace = self._managed_prometheus()
            env["DR_REMOTE_WRITE_URL"] = Fn.join("", [self.workspace.attr_prometheus_endpoint, "api/v1/remote_write"])
            env["DR_REMOTE_WRITE_SIGV4_REGION"] = Stack.of(self).region
            # AMP accepts late samples for a short while only; older buffered ones are dropped (and counted)
            env["DR_BRIDGE_MAX_SAMPLE_AGE_S"] = "50"
            role.add_to_policy(iam.PolicyStatement(actions=["aps:RemoteWrite"], resources=[self.workspace.attr_arn]))
        self.function = lambda_.Function(
            self,
            "MetricsBridge",
            runtime=lambda_.Runtime.PYTHON_3_13,
            handler="metrics_bridge.app.handler",
            code=function_code(None if config.local else "bridge"),
            memory_size=256,
            timeout=Duration.seconds(10),
            role=role,
            log_group=log_group,
            description="Diabetes Risk: EMF metrics from CloudWatch Logs to Prometheus (remote write)",
            environment=env,
        )
        self.subscriptions = {}
        for name, source in sources.items():  # never the bridge's own group: it would feed on itself
            self.subscriptions[name] = logs.SubscriptionFilter(
                self,
                f"{name}ToBridge",
                log_group=source,
                destination=destinations.LambdaDestination(self.function),
                filter_pattern=EMF_FILTER,
            )
        alarm(
            self,
            "BridgeDroppingSamples",
            "The metrics bridge dropped samples (Prometheus unreachable for long, or samples refused)",
            cloudwatch.Metric(
                namespace="DiabetesRisk",
                metric_name="BridgeSamplesDropped",
                dimensions_map={"service": "metrics_bridge"},
                period=Duration.minutes(5),
                statistic="Sum",
            ),
        )
        alarm(
            self,
            "BridgeErrors",
            "The metrics bridge function failed",
            self.function.metric_errors(period=Duration.minutes(5), statistic="Sum"),
        )
        self._suppressions()

    def _managed_prometheus(self) -> aps.CfnWorkspace:
        """AMP workspace + the project's rules + an alert manager that publishes to the alarm topic."""
        region = Stack.of(self).region
        # Written out (not yaml.dump): the topic ARN and region are CDK tokens, which a YAML dumper may fold.
        alertmanager = (
            "alertmanager_config: |\n"
            "  route:\n"
            "    receiver: sns\n"
            "    group_by: [alertname]\n"
            "  receivers:\n"
            "    - name: sns\n"
            "      sns_configs:\n"
            f"        - topic_arn: {self.topic.topic_arn}\n"
            "          sigv4:\n"
            f"            region: {region}\n"
        )
        workspace = aps.CfnWorkspace(self, "Prometheus", alias="diabetes-risk", alert_manager_definition=alertmanager)
        aps.CfnRuleGroupsNamespace(
            self, "AlertRules", workspace=workspace.attr_arn, name="diabetes-risk", data=rules_yaml()
        )
        self.topic.add_to_resource_policy(
            iam.PolicyStatement(
                principals=[iam.ServicePrincipal("aps.amazonaws.com")],
                actions=["sns:Publish", "sns:GetTopicAttributes"],
                resources=[self.topic.topic_arn],
                conditions={"ArnEquals": {"aws:SourceArn": workspace.attr_arn}},
            )
        )
        return workspace

    def notify_all_alarms(self, scope: Construct) -> int:
        """Every CloudWatch alarm under `scope` notifies the topic. Returns how many."""
        action = cw_actions.SnsAction(self.topic)
        found = [c for c in scope.node.find_all() if isinstance(c, cloudwatch.Alarm)]
        for a in found:
            a.add_alarm_action(action)
        return len(found)

    def _suppressions(self) -> None:
        NagSuppressions.add_resource_suppressions(
            self.function.role,
            [
                {
                    "id": "AwsSolutions-IAM5",
                    "reason": "Log streams of the bridge's own log group are created at run time.",
                }
            ],
            apply_to_children=True,
        )
        NagSuppressions.add_resource_suppressions(
            self.function,
            [{"id": "AwsSolutions-L1", "reason": "python3.13 on purpose: matches the project and the local cloud."}],
        )
