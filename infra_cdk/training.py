"""The training pipeline: one Lambda per step, the Step Functions state machine from
statemachines/training.asl.json, a daily schedule, and a start when new data lands in data/incoming/."""

from __future__ import annotations

from pathlib import Path

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_destinations as lambda_destinations
from aws_cdk import aws_logs as logs
from aws_cdk import aws_stepfunctions as sfn
from cdk_nag import NagSuppressions
from constructs import Construct

from inference_core.feature_layout import INGESTED_PREFIX, MEASUREMENTS_PREFIX

from .bundling import function_code
from .config import DeployConfig
from .queues import dead_letter_alarm, dead_letter_queue
from .storage import Storage, bucket_arn, bucket_name, invoke_on_created

ROOT = Path(__file__).resolve().parents[1]
ASL = ROOT / "statemachines" / "training.asl.json"

# step → (handler, timeout s, memory MB, S3 access). Sized from the functions' own peaks on the bundled data
# (REPORT's VmHWM on the local cloud, 2026-11-30): validate 254 MB, features 350, train 262, evaluate 301,
# export 312, register 387, promote 350. CPU grows with memory on Lambda, so the CPU-bound steps (Feast, the
# cross-validated search, the plots) keep ~1.7 vCPUs; the I/O-bound ones get 1 GB: ~3x their peak for larger files.
STEPS: dict[str, tuple[str, int, int, tuple[str, ...]]] = {
    "Validate": ("validate", 300, 1024, ("read_data", "runs")),
    "Features": ("features", 600, 3008, ("runs", "features")),
    "Train": ("train", 900, 3008, ("runs",)),
    "Evaluate": ("evaluate", 600, 3008, ("runs",)),
    "Export": ("export", 300, 1024, ("runs",)),
    "Register": ("register", 300, 1024, ("runs",)),
    "Promote": ("promote", 120, 1024, ("runs", "publish")),
    # Feast's materialisation into DynamoDB: after a promotion (a state), and after each scored batch (S3 event)
    "Materialize": ("materialize", 300, 2048, ("features",)),
    "RecordFailure": ("record_failure", 60, 512, ("runs",)),
}


def _statements(access: tuple[str, ...]) -> list[iam.PolicyStatement]:
    """Exact actions on exact prefixes: no s3:* and no bucket-wide writes."""
    out = [iam.PolicyStatement(actions=["s3:ListBucket"], resources=[bucket_arn("artifacts")])]
    if "runs" in access:
        out.append(
            iam.PolicyStatement(
                actions=["s3:GetObject", "s3:PutObject"], resources=[bucket_arn("artifacts", "/runs/*")]
            )
        )
    if "read_data" in access:
        out += [
            iam.PolicyStatement(
                actions=["s3:GetObject", "s3:GetObjectVersion"], resources=[bucket_arn("data", "/data/*")]
            ),
            iam.PolicyStatement(actions=["s3:ListBucket"], resources=[bucket_arn("data")]),
        ]
    if "features" in access:  # the offline store (data bucket) and Feast's registry (artifacts bucket)
        out += [
            iam.PolicyStatement(
                actions=["s3:GetObject", "s3:PutObject"],
                resources=[bucket_arn("data", f"/{MEASUREMENTS_PREFIX}*"), bucket_arn("artifacts", "/feast/*")],
            ),
            iam.PolicyStatement(actions=["s3:ListBucket"], resources=[bucket_arn("data")]),
        ]
    if "publish" in access:  # and read back: the champion to compare with, a version's serving.json
        out.append(
            iam.PolicyStatement(
                actions=["s3:GetObject", "s3:PutObject"],
                resources=[bucket_arn("artifacts", "/models/*"), bucket_arn("artifacts", "/serving/champion.json")],
            )
        )
    return out


# Only what the training image copies counts toward its hash: a console or CI edit must not rebuild it.
IMAGE_EXCLUDES = [".venv", ".state", "node_modules", "cdk.out", ".git", "tests", "bench", "console", "config_checks"]
IMAGE_EXCLUDES += ["compose", ".github", "docs", "examples"]


class TrainingPipeline(Construct):
    def __init__(self, scope: Construct, construct_id: str, config: DeployConfig, storage: Storage) -> None:
        super().__init__(scope, construct_id)
        self.config = config
        self.log_groups: dict[str, logs.LogGroup] = {}  # every step's (and the new-data start's) log group
        env = {
            "DR_ARTIFACTS_BUCKET": bucket_name("artifacts"),
            "DR_DATA_BUCKET": bucket_name("data"),
            "MLFLOW_TRACKING_URI": config.mlflow_uri,
            "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",
            "DR_WORK_DIR": "/tmp/training",
            "POWERTOOLS_SERVICE_NAME": "diabetes-risk-training",
            "POWERTOOLS_LOG_LEVEL": "INFO",
            "DR_ALLOW_FAULT_INJECTION": "true" if config.allow_fault_injection else "false",
            "DR_PROMOTION": config.promotion,
            "DR_ONLINE_STORE": "dynamodb",
            "DR_ONLINE_TABLE_TEMPLATE": storage.online_table_template,
        }
        if config.s3_endpoint:
            env |= {"AWS_ENDPOINT_URL_S3": config.s3_endpoint, "FEAST_S3_ENDPOINT_URL": config.s3_endpoint}
        if config.local:
            # the local cloud starts each environment at deploy: the step's imports belong in init; and its host
            # processes can run joblib's workers (Lambda has no /dev/shm for them), so a search uses every core
            env |= {"DR_PRELOAD_AT_INIT": "true", "DR_SEARCH_JOBS": "0"}

        self.functions: dict[str, lambda_.Function] = {}
        for step, (handler, timeout, memory, access) in STEPS.items():
            self.functions[step] = self._function(
                step, f"training_steps.handlers.{handler}", timeout, memory, env, _statements(access)
            )
            storage.grant_keys(
                self.functions[step].role,
                read=("data",) if "read_data" in access else (),
                write=("artifacts",)
                if {"runs", "publish"} & set(access)
                else ()
                # the offline store (data bucket) and Feast's registry (artifacts bucket)
                + (("artifacts", "data") if "features" in access else ()),
            )
            if "features" in access:
                storage.grant_online_features(self.functions[step].role, write=True)
        self.materialize_function = self.functions.pop("Materialize")
        if not config.local:
            # One at a time: a materialisation that read the offline store before a newer batch landed must not
            # finish after that batch's and put the older value back. Throttled S3 events wait and retry (Lambda
            # retries throttled asynchronous invocations for up to 6 hours); the state machine's state retries too.
            cfn: lambda_.CfnFunction = self.materialize_function.node.default_child
            cfn.reserved_concurrent_executions = 1
        # every scored batch that added measurements leaves a marker: one materialisation per batch; what it gives up
        # on waits in a dead-letter queue (an alarm watches it), and `diabetes-risk features materialize` repairs
        self.materialize_dead_letters = dead_letter_queue(self, "MaterializeDeadLetters")
        self.materialize_function.configure_async_invoke(
            retry_attempts=2,
            max_event_age=Duration.hours(6),
            on_failure=lambda_destinations.SqsDestination(self.materialize_dead_letters),
        )
        dead_letter_alarm(
            self,
            "MaterializeDeadLetterAlarm",
            self.materialize_dead_letters,
            "A batch's online features were not updated",
        )

        log_group = logs.LogGroup(
            self,
            "StateMachineLogs",
            retention=logs.RetentionDays.ONE_MONTH,
            removal_policy=RemovalPolicy.DESTROY if config.local else RemovalPolicy.RETAIN,
        )
        self.state_machine = sfn.StateMachine(
            self,
            "StateMachine",
            state_machine_name=f"{Stack.of(self).stack_name}-training",
            definition_body=sfn.DefinitionBody.from_string(ASL.read_text()),
            definition_substitutions={
                f"{step}FunctionArn": fn.function_arn
                for step, fn in {**self.functions, "Materialize": self.materialize_function}.items()
            },
            logs=sfn.LogOptions(destination=log_group, level=sfn.LogLevel.ALL, include_execution_data=False),
            tracing_enabled=True,
            timeout=Duration.hours(2),
        )
        for fn in [*self.functions.values(), self.materialize_function]:
            fn.grant_invoke(self.state_machine)

        events.Rule(
            self,
            "DailyRetraining",
            description="Retrain the diabetes risk model every day",
            schedule=events.Schedule.expression(config.schedule),
            targets=[
                targets.SfnStateMachine(
                    self.state_machine,
                    input=events.RuleTargetInput.from_object(
                        {"train_uri": config.schedule_train_uri, "holdout_uri": "bundled"}
                    ),
                )
            ],
        )
        self._start_on_new_data(storage, env)
        self._suppressions()

    def _role(self, step: str, statements: list[iam.PolicyStatement]) -> iam.Role:
        role = iam.Role(self, f"{step}Role", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"))
        for statement in statements:
            role.add_to_policy(statement)
        return role

    def _function(
        self,
        step: str,
        handler: str,
        timeout: int,
        memory: int,
        env: dict[str, str],
        statements: list[iam.PolicyStatement],
    ) -> lambda_.Function:
        log_group = logs.LogGroup(
            self, f"{step}Logs", retention=logs.RetentionDays.ONE_MONTH, removal_policy=RemovalPolicy.DESTROY
        )
        self.log_groups[step] = log_group
        role = self._role(step, statements)
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["logs:CreateLogStream", "logs:PutLogEvents"], resources=[f"{log_group.log_group_arn}:*"]
            )
        )
        common = dict(
            timeout=Duration.seconds(timeout),
            memory_size=memory,
            environment=env,
            role=role,
            log_group=log_group,
            description=f"Diabetes Risk training step: {step}",
        )
        if self.config.local:
            # The host executor runs zip functions with the project's interpreter, which has every dependency.
            return lambda_.Function(
                self,
                step,
                runtime=lambda_.Runtime.PYTHON_3_13,
                handler=handler,
                code=function_code(),
                **common,
            )
        # On AWS the heavy steps (scikit-learn, XGBoost, MLflow, Feast) exceed the 250 MB zip limit.
        return lambda_.DockerImageFunction(
            self,
            step,
            code=lambda_.DockerImageCode.from_image_asset(
                str(ROOT),
                file="functions/training.Dockerfile",
                cmd=[handler],
                exclude=IMAGE_EXCLUDES,
            ),
            architecture=lambda_.Architecture.X86_64,
            **common,
        )

    def _start_on_new_data(self, storage: Storage, env: dict[str, str]) -> None:
        start = self._function(
            "StartOnNewData",
            "training_steps.start.handler",
            30,
            256,
            {**env, "DR_STATE_MACHINE_ARN": self.state_machine.state_machine_arn},
            [iam.PolicyStatement(actions=["states:StartExecution"], resources=[self.state_machine.state_machine_arn])],
        )
        self.start_function = start
        self.start_dead_letters = dead_letter_queue(self, "StartDeadLetters")
        start.configure_async_invoke(
            retry_attempts=2,
            max_event_age=Duration.hours(6),
            on_failure=lambda_destinations.SqsDestination(self.start_dead_letters),
        )
        dead_letter_alarm(self, "StartDeadLetterAlarm", self.start_dead_letters, "A new dataset did not start training")
        invoke_on_created(self, "DataBucketInvokesStart", storage.data, "data", start, "data/incoming/")
        invoke_on_created(
            self, "DataBucketInvokesMaterialize", storage.data, "data", self.materialize_function, INGESTED_PREFIX
        )

    def _suppressions(self) -> None:
        for fn in [*self.functions.values(), self.start_function, self.materialize_function]:
            NagSuppressions.add_resource_suppressions(
                fn.role,
                [
                    {
                        "id": "AwsSolutions-IAM5",
                        "reason": "Object keys under a run's prefix and log streams are created at run time; the "
                        "wildcard is limited to one prefix of one bucket (or one log group).",
                    }
                ],
                apply_to_children=True,
            )
            NagSuppressions.add_resource_suppressions(
                fn,
                [
                    {
                        "id": "AwsSolutions-L1",
                        "reason": "python3.13 on purpose: the project's interpreter and the local cloud's runtime.",
                    }
                ],
            )
        NagSuppressions.add_resource_suppressions(
            self.state_machine,
            [
                {
                    "id": "AwsSolutions-IAM5",
                    "reason": "Invoking a function's versions/aliases (function:*) and X-Ray/CloudWatch Logs delivery "
                    "need resource wildcards; they are limited to this pipeline's functions.",
                }
            ],
            apply_to_children=True,
        )
