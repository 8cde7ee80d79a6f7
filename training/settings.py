"""Training settings, validated once at start: a missing or bad value fails before any work is done."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from .registry import GateSettings
from .validation import ValidationSettings

PROJECT_ROOT = Path(__file__).resolve().parents[1]


class TrainingSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DR_", extra="ignore")

    artifacts_bucket: str = Field("diabetes-risk-artifacts", min_length=3)
    data_bucket: str = Field("diabetes-risk-data", min_length=3)
    mlflow_tracking_uri: str = Field("http://127.0.0.1:5000", validation_alias="MLFLOW_TRACKING_URI")
    experiment: str = "diabetes-risk"
    work_dir: Path = PROJECT_ROOT / ".state" / "training"
    feast_registry: str | None = Field(None, description="Feast registry (path or s3://); default in work_dir")
    feature_source: str | None = Field(None, description="Feast offline Parquet (path or s3://); default in work_dir")
    s3_endpoint: str | None = Field(None, validation_alias="AWS_ENDPOINT_URL_S3")
    folds: int = Field(5, ge=2, le=20)
    seed: int = 42
    allow_fault_injection: bool = Field(
        False, description="Honour the `fault` test hook of an execution's input (on for the local target only)"
    )
    min_auc: float = Field(0.80, ge=0.5, le=1.0)
    max_drop: float = Field(0.01, ge=0.0, le=0.5)
    min_rows: int = Field(50, ge=10)
    min_per_class: int = Field(10, ge=2)

    @property
    def gate(self) -> GateSettings:
        return GateSettings(min_auc=self.min_auc, max_drop=self.max_drop)

    @property
    def validation(self) -> ValidationSettings:
        return ValidationSettings(min_rows=self.min_rows, min_per_class=self.min_per_class)
