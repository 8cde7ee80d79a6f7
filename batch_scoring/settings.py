"""The batch-score function's settings (environment, prefix DR_), validated once at cold start."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from inference_core.schema import FEATURES


class BatchSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DR_", extra="ignore")

    batch_bucket: str = Field(min_length=3, description="Bucket with inbox/, outbox/ and quarantine/")
    artifacts_bucket: str = Field(min_length=3, description="Bucket with serving/champion.json and the models")
    pointer_key: str = "serving/champion.json"
    ort_threads: int = Field(
        1, ge=1, le=16, description="onnxruntime threads; a second thread reads and checks the next chunk meanwhile"
    )
    chunk_rows: int = Field(131_072, ge=1_000, le=2_000_000, description="Rows per Parquet chunk")
    csv_block_bytes: int = Field(4 << 20, ge=1 << 16, le=256 << 20, description="Bytes per CSV chunk")
    max_input_bytes: int = Field(
        2 << 30,
        ge=1,
        description="Largest file accepted. Measured throughput scores it well inside the 15 minutes one "
        "invocation may run; a larger file is refused with a message to split it.",
    )
    required_values: Annotated[frozenset[str], NoDecode] = Field(
        frozenset({"glucose", "bmi", "age"}),
        description="Features a row must have a value for; other missing values are imputed by the model",
    )
    id_column: str | None = Field("patient_id", description="Column copied to the predictions, when present")
    data_bucket: str | None = Field(
        None,
        description="Bucket of the feature store's offline measurements: valid rows with patient ids are kept there "
        "(features/measurements/) and the online store is refreshed; unset, nothing is kept",
    )
    psi_threshold: float = Field(0.2, gt=0)
    ks_threshold: float = Field(0.2, gt=0, le=1)
    drift_min_rows: int = Field(100, ge=1)
    drift_starts_training: bool = Field(False, description="Start the training state machine when a batch drifts")
    drift_train_uri: str = Field("bundled", description="Training data for a drift-started run")
    state_machine_arn: str | None = None
    idempotency_table: str = Field(min_length=3, description="DynamoDB table of Powertools idempotency records")
    idempotency_expiry_s: int = Field(
        7 * 24 * 3600, ge=3600, description="How long a finished object version is remembered (well past 15 min)"
    )
    work_dir: str | None = Field(None, description="Scratch folder (default: the system temp folder)")

    @field_validator("required_values", mode="before")
    @classmethod
    def _split(cls, value):
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        unknown = sorted(set(value) - set(FEATURES))
        if unknown:
            raise ValueError(f"unknown features: {', '.join(unknown)} (known: {', '.join(FEATURES)})")
        return frozenset(value)
