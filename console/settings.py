"""The console's settings (environment prefix DR_CONSOLE_), validated when it starts."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from localcloud.settings import loopback_host


class ConsoleSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DR_CONSOLE_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(8088, ge=1, le=65535)
    target: Literal["local", "aws"] = Field("local", description="the embedded local cloud, or AWS (your credentials)")
    stack_name: str = "DiabetesRisk"
    mlflow_url: str | None = Field(None, description="MLflow tracking server (local: the local cloud's)")
    prometheus_url: str | None = Field(None, description="linked from the pages (local: the local cloud's)")
    poll_s: float = Field(0.5, gt=0, le=10, description="how often a live page's server side reads the history")
    max_upload_mb: int = Field(200, ge=1, le=2048)

    @field_validator("host")
    @classmethod
    def _loopback_only(cls, value: str) -> str:
        return loopback_host(value, "the console")
