"""Training settings, validated once at start: a missing or bad value fails before any work is done."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from .registry import GateSettings
from .validation import ValidationSettings

PROJECT_ROOT = Path(__file__).resolve().parents[1]
# search_jobs=0's ceiling: a worker process holds ≈ 200 MB of the Train function's 3008 MB (196 MB RSS by hand, with
# training.models imported), and the Map runs three families at once
MAX_AUTO_SEARCH_JOBS = 4


class TrainingSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DR_", extra="ignore")

    artifacts_bucket: str = Field("diabetes-risk-artifacts", min_length=3)
    data_bucket: str = Field("diabetes-risk-data", min_length=3)
    mlflow_tracking_uri: str = Field("http://127.0.0.1:5000", validation_alias="MLFLOW_TRACKING_URI")
    experiment: str = "diabetes-risk"
    work_dir: Path = PROJECT_ROOT / ".state" / "training"
    feast_registry: str | None = Field(
        None, description="Feast registry (path or s3://); default s3://<artifacts>/feast/registry.db, or work_dir"
    )
    offline_store: str | None = Field(
        None,
        description="Measurements folder (path or s3://); default s3://<data>/features/measurements/, or work_dir",
    )
    online_store: Literal["sqlite", "dynamodb"] = Field(
        "sqlite", description="Feast online store: DynamoDB when deployed, SQLite in work_dir for runs without a cloud"
    )
    online_table_template: str = Field(
        "{project}.{table_name}", description="Feast's DynamoDB table_name_template (the stack sets its table)"
    )
    region: str = Field("us-east-1", validation_alias=AliasChoices("AWS_REGION", "AWS_DEFAULT_REGION"))
    dynamodb_endpoint: str | None = Field(None, validation_alias="AWS_ENDPOINT_URL_DYNAMODB")
    s3_endpoint: str | None = Field(None, validation_alias="AWS_ENDPOINT_URL_S3")
    folds: int = Field(5, ge=2, le=20)
    cv_repeats: int = Field(3, ge=1, le=20, description="Repeats of the stratified k-fold that compares the families")
    search_jobs: int = Field(
        1,
        ge=0,
        le=64,
        description="Processes (threads for the threaded families) a family's search runs its fits on; 0: one per "
        f"core, at most {MAX_AUTO_SEARCH_JOBS}. The local target uses 0; on AWS Lambda joblib has no /dev/shm for its "
        "processes and runs serially whatever this says",
    )
    preload_at_init: bool = Field(
        False, description="Import the step's libraries at init (the local target, whose environments start at deploy)"
    )
    seed: int = 42
    allow_fault_injection: bool = Field(
        False, description="Honour the `fault` test hook of an execution's input (on for the local target only)"
    )
    min_auc: float = Field(0.80, ge=0.5, le=1.0)
    gate_alpha: float = Field(
        0.05, gt=0.0, lt=0.5, description="A candidate is refused when the paired test shows it worse at this level"
    )
    gate_resamples: int = Field(2000, ge=200, le=100_000, description="Paired bootstrap resamples of the gate")
    gate_margin: float = Field(
        0.02,
        ge=0.0,
        le=0.2,
        description="Non-inferiority margin (ROC AUC) for a model to replace the champion directly",
    )
    promotion: Literal["immediate", "shadow", "canary"] = Field(
        "immediate",
        description="What a run that passes the gate publishes: the champion (immediate), or a challenger in shadow "
        "or canary mode while a champion serves",
    )
    canary_share: float = Field(0.1, gt=0.0, lt=1.0, description="Share of requests a canary challenger answers")
    shadow_share: float = Field(1.0, gt=0.0, le=1.0, description="Share of requests a shadow challenger also scores")
    min_rows: int = Field(50, ge=10)
    min_per_class: int = Field(10, ge=2)

    @property
    def search_workers(self) -> int:
        """search_jobs, 0 resolved to the cores joblib finds (CPU affinity and cgroup quotas counted), at most
        MAX_AUTO_SEARCH_JOBS: each worker is a process that counts towards the Train function's memory."""
        if self.search_jobs:
            return self.search_jobs
        from joblib import cpu_count

        return max(1, min(cpu_count(), MAX_AUTO_SEARCH_JOBS))

    @property
    def gate(self) -> GateSettings:
        return GateSettings(
            min_auc=self.min_auc, alpha=self.gate_alpha, resamples=self.gate_resamples, margin=self.gate_margin
        )

    @property
    def validation(self) -> ValidationSettings:
        return ValidationSettings(min_rows=self.min_rows, min_per_class=self.min_per_class)
