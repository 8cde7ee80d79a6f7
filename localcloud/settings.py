"""Settings of the embedded local cloud: ports, state folder, services. Environment prefix DR_."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parents[1]

# What the project uses, and what `cdklocal` needs to bootstrap and deploy. DynamoDB is served by the
# project's moto-backed provider (LocalStack's own would download Java on first use).
DEFAULT_SERVICES = (
    "s3,lambda,stepfunctions,apigateway,cloudwatch,logs,events,scheduler,iam,sts,cloudformation,ssm,sqs,sns,"
    "dynamodb,kms,secretsmanager"
)


def _which(*names: str) -> Path | None:
    for name in names:
        found = shutil.which(name)
        if found:
            return Path(found)
    return None


def loopback_host(value: str, who: str) -> str:
    """Everything local listens on loopback only: nothing here is meant for the network."""
    if not (value.startswith("127.") or value in {"localhost", "::1"}):
        raise ValueError(f"{who} listens on loopback only, got host {value!r}")
    return value


class LocalCloudSettings(BaseSettings):
    """Where the local cloud keeps its state and which loopback ports it listens on."""

    model_config = SettingsConfigDict(env_prefix="DR_", extra="ignore")

    state_dir: Path = Field(PROJECT_ROOT / ".state", description="All local state (git-ignored).")
    instance: str = Field("default", description="Name of this local cloud; its files live in run/<name>.")
    host: str = "127.0.0.1"
    localstack_port: int = Field(4566, ge=1, le=65535)
    mlflow_port: int = Field(5000, ge=1, le=65535)
    prometheus_port: int = Field(9090, ge=1, le=65535)
    alertmanager_port: int = Field(9093, ge=1, le=65535)
    alerts_port: int = Field(9095, ge=1, le=65535, description="the operator's alert inbox (webhook receiver)")
    console_port: int = Field(8088, ge=1, le=65535, description="the browser console (Step Functions runs, models)")
    prometheus_bin: Path | None = Field(default_factory=lambda: _which("prometheus"))
    alertmanager_bin: Path | None = Field(default_factory=lambda: _which("prometheus-alertmanager", "alertmanager"))
    logs_subscription_window_s: float = Field(1.0, ge=0, le=60, description="local batching of log subscriptions")
    lambda_retry_base_delay_s: int = Field(
        60, ge=1, le=600, description="Delay before an async invoke's first retry (AWS: about a minute)"
    )
    logs_subscription_concurrency: int = Field(2, ge=1, le=32, description="log streams delivered at a time")
    services: str = DEFAULT_SERVICES
    lambda_python: Path = Field(Path(sys.executable), description="Interpreter that runs Lambda handlers.")
    lambda_max_environments: int | None = Field(
        None,
        ge=0,
        le=256,
        description="Execution environments (host processes) per function; more requests wait for a warm one. "
        "Unset: the machine's cores (at least 2); 0: unbounded, a new process per concurrent request.",
    )
    lambda_prewarm: bool = Field(
        True,
        description="Start one environment per function version when it is deployed, so its first invocation "
        "finds it warm (AWS: only with provisioned concurrency); needs executor_fast_path.",
    )
    lambda_prewarm_hold_s: float = Field(
        30.0,
        ge=0,
        le=600,
        description="How long each of those starts may wait for an idle core before it goes anyway (0: no wait).",
    )
    executor_fast_path: bool = Field(
        True,
        description="The host executor's invoke path as tuned on 2026-12-01; off: as it was before (for benchmarks).",
    )
    in_memory_client: bool = Field(
        True, description="LocalStack's calls to itself (API Gateway → Lambda, …) in memory, not over its HTTP port."
    )
    mlflow_one_process: bool = Field(
        True,
        description="Serve MLflow's app from the `mlflow server` process itself (localcloud/mlflow_server.py) "
        "instead of a second process that imports MLflow again.",
    )
    cfn_poll_s: float = Field(
        0.05,
        ge=0.01,
        le=5,
        description="How often CloudFormation re-reads a resource still being created (LocalStack's own: 1 s).",
    )
    mlflow_bucket: str = "mlflow-artifacts"
    region: str = "us-east-1"
    start_timeout_s: float = 90.0
    external: bool = Field(
        False,
        description="The services run elsewhere (docker compose): check their health, never start or stop them.",
    )
    functions_mlflow_url: str | None = Field(
        None, description="MLflow as the deployed functions reach it (external: http://mlflow:5000)."
    )
    functions_remote_write_url: str | None = Field(
        None, description="Prometheus remote write as the functions reach it (external: http://prometheus:9090/...)."
    )
    functions_s3_endpoint: str | None = Field(
        None, description="LocalStack as the functions reach it (external: http://127.0.0.1:4566, in its container)."
    )

    @model_validator(mode="after")
    def _compose_addresses(self) -> LocalCloudSettings:
        """Under docker compose the functions run inside the LocalStack container: they reach MLflow and
        Prometheus by service name and LocalStack on the container's own port, whatever the host maps."""
        if self.external:
            self.functions_mlflow_url = self.functions_mlflow_url or "http://mlflow:5000"
            self.functions_remote_write_url = self.functions_remote_write_url or "http://prometheus:9090/api/v1/write"
            self.functions_s3_endpoint = self.functions_s3_endpoint or "http://127.0.0.1:4566"
        return self

    @field_validator("host")
    @classmethod
    def _loopback_only(cls, value: str) -> str:
        return loopback_host(value, "the local cloud")

    @property
    def run_dir(self) -> Path:
        return self.state_dir / "run" / self.instance

    @property
    def logs_dir(self) -> Path:
        return self.run_dir / "logs"

    @property
    def pids_file(self) -> Path:
        return self.run_dir / "pids.json"

    @property
    def localstack_venv(self) -> Path:
        return self.state_dir / "localstack-venv"

    @property
    def localstack_url(self) -> str:
        return f"http://{self.host}:{self.localstack_port}"

    @property
    def mlflow_url(self) -> str:
        return f"http://{self.host}:{self.mlflow_port}"

    @property
    def prometheus_url(self) -> str:
        return f"http://{self.host}:{self.prometheus_port}"

    @property
    def remote_write_url(self) -> str:
        return f"{self.prometheus_url}/api/v1/write"

    @property
    def alertmanager_url(self) -> str:
        return f"http://{self.host}:{self.alertmanager_port}"

    @property
    def alerts_url(self) -> str:
        return f"http://{self.host}:{self.alerts_port}"

    @property
    def console_url(self) -> str:
        return f"http://{self.host}:{self.console_port}"

    def dr_env(self) -> dict[str, str]:
        """These settings as DR_* variables: a child process (the console) then reads the same local cloud."""
        names = ("state_dir", "instance", "host", "localstack_port", "mlflow_port", "prometheus_port")
        names += ("alertmanager_port",)
        names += ("alerts_port", "console_port", "region")
        return {f"DR_{name.upper()}": str(getattr(self, name)) for name in names} | {"DR_CONSOLE_HOST": self.host}

    @property
    def alerts_file(self) -> Path:
        return self.run_dir / "alerts.jsonl"

    def client_env(self) -> dict[str, str]:
        """Environment that points AWS SDKs, cdklocal and MLflow clients at this local cloud."""
        return {
            "AWS_ENDPOINT_URL": self.localstack_url,
            "AWS_ENDPOINT_URL_S3": self.localstack_url,
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
            "AWS_DEFAULT_REGION": self.region,
            "AWS_REGION": self.region,
            "MLFLOW_TRACKING_URI": self.mlflow_url,
            "MLFLOW_S3_ENDPOINT_URL": self.localstack_url,
        }


def keeps_bytecode(env: dict[str, str]) -> dict[str, str]:
    """`env` without PYTHONDONTWRITEBYTECODE: the local cloud's processes and CDK's app write a module's bytecode into
    their environment on its first import, since the install compiles nothing ahead (README, "Bytecode on first
    import"); otherwise, where an image or a shell sets it, every `local up` and synth would compile from source."""
    return {k: v for k, v in env.items() if k != "PYTHONDONTWRITEBYTECODE"}
