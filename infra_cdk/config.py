"""Deployment settings from CDK context (`-c key=value`), validated before anything is built."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, field_validator

from auth.tokens import parse_clients


class DeployConfig(BaseModel):
    target: Literal["local", "aws"] = "local"
    stack_name: str = Field("DiabetesRisk", pattern=r"^[A-Za-z][A-Za-z0-9-]{0,127}$")
    mlflow_uri: str = Field("http://127.0.0.1:5000", description="MLflow tracking server the functions log to")
    s3_endpoint: str | None = Field(None, description="S3 endpoint for Feast on the local cloud")
    schedule: str = Field("cron(0 3 * * ? *)", description="EventBridge schedule of the daily retraining")
    schedule_train_uri: str = "bundled"
    api_key: bool = Field(False, description="Require an API key on the local cloud too (always on AWS)")
    clients: str = Field(
        "clinic-demo=predict+model:read,console=model:read",
        description="Client systems allowed to call the API, each with its scopes: name[=scope+scope],... (all "
        "scopes when none given). A Cognito app client each on AWS; names the local issuer mints tokens for locally",
    )
    authorizer_cache_s: int = Field(
        300,
        ge=0,
        le=300,
        description="How long API Gateway caches a token's answer: a token expired or revoked within this time is "
        "still accepted until its cached answer expires",
    )
    drift_retrain: bool = Field(False, description="A batch that drifts starts the training state machine")
    promotion: Literal["immediate", "shadow", "canary"] = Field(
        "immediate",
        description="What a trained model that passes the gate becomes: the champion, or a challenger (shadow or "
        "canary) that `diabetes-risk models promote` makes the champion; an execution's input may override it",
    )
    model_refresh_s: int | None = Field(
        None,
        ge=0,
        le=3600,
        description="How often the prediction function re-reads the serving pointer (default: "
        "5 s on the local cloud, 60 s on AWS)",
    )
    remote_write_url: str = Field(
        "http://127.0.0.1:9090/api/v1/write",
        pattern=r"^https?://",
        description="Local target: the Prometheus the metrics bridge remote-writes to (AWS: the stack's AMP workspace)",
    )
    fault_injection: bool | None = Field(
        None, description="Allow the training test hook `fault` (default: on for the local target, off on AWS)"
    )
    alarm_email: str | None = Field(
        None, pattern=r"^[^@\s]+@[^@\s]+$", description="Subscribe this address to the alarm topic (SNS email)"
    )

    @classmethod
    def from_context(cls, node) -> DeployConfig:
        keys = cls.model_fields
        values = {k: node.try_get_context(k) for k in keys if node.try_get_context(k) is not None}
        for flag in ("api_key", "drift_retrain", "fault_injection"):
            if isinstance(values.get(flag), str):  # -c api_key=true arrives as text
                values[flag] = values[flag].lower() in ("1", "true", "yes")
        return cls(**values)

    @field_validator("clients")
    @classmethod
    def _clients(cls, value: str) -> str:
        parse_clients(value)
        return value

    @property
    def client_scopes(self) -> dict[str, tuple[str, ...]]:
        return parse_clients(self.clients)

    @property
    def refresh_s(self) -> int:
        if self.model_refresh_s is not None:
            return self.model_refresh_s
        return 5 if self.local else 60

    @property
    def local(self) -> bool:
        return self.target == "local"

    @property
    def allow_fault_injection(self) -> bool:
        return self.local if self.fault_injection is None else self.fault_injection
