"""Features through Feast: validated rows become a Parquet offline source; training data comes back from
a point-in-time join (`get_historical_features`); the online store (SQLite) is materialized too.

Imputation and scaling are not here: they live in the model Pipeline so the ONNX model carries them.
"""

from __future__ import annotations

import io
import time
import urllib.parse
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd

from inference_core.schema import FEATURES, LABEL


@dataclass
class FeastLocations:
    source_uri: str  # Parquet offline source: local path or s3://bucket/key.parquet
    registry_path: str  # local path or s3:// URI
    online_path: str  # SQLite file (local)
    s3_endpoint: str | None = None  # the local cloud's S3; None on AWS


def with_entity_columns(valid: pd.DataFrame, as_of: datetime) -> pd.DataFrame:
    """Adds patient_id (row position in this dataset) and event_timestamp (when it was measured/loaded)."""
    frame = valid.copy()
    frame.insert(0, "patient_id", range(1, len(frame) + 1))
    frame["event_timestamp"] = pd.Timestamp(as_of)
    return frame


def write_parquet(frame: pd.DataFrame, uri: str) -> None:
    buf = io.BytesIO()
    frame.to_parquet(buf, index=False)
    parsed = urllib.parse.urlparse(uri)
    if parsed.scheme == "s3":
        import boto3

        boto3.client("s3").put_object(Bucket=parsed.netloc, Key=parsed.path.lstrip("/"), Body=buf.getvalue())
    else:
        Path(uri).parent.mkdir(parents=True, exist_ok=True)
        Path(uri).write_bytes(buf.getvalue())


def _store(locations: FeastLocations, repo_path: Path):
    from feast import FeatureStore, RepoConfig

    config = RepoConfig(
        project="diabetes_risk",
        provider="local",
        registry=locations.registry_path,
        online_store={"type": "sqlite", "path": locations.online_path},
        offline_store={"type": "file"},
        entity_key_serialization_version=3,
        repo_path=repo_path,
    )
    return FeatureStore(config=config)


def training_frame(
    valid: pd.DataFrame, features: list[str], locations: FeastLocations, materialize: bool = True
) -> tuple[pd.DataFrame, dict[str, float]]:
    """Register the features, load them back point-in-time for the labelled patients, and materialize
    the online store. Returns the features + label ordered as the input, and the time of each step."""
    from feature_repo.definitions import VIEW, objects

    timings: dict[str, float] = {}
    as_of = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
    frame = with_entity_columns(valid, as_of)
    t0 = time.perf_counter()
    write_parquet(frame[["patient_id", "event_timestamp", *FEATURES]], locations.source_uri)
    Path(locations.online_path).parent.mkdir(parents=True, exist_ok=True)
    if "://" not in locations.registry_path:
        Path(locations.registry_path).parent.mkdir(parents=True, exist_ok=True)
    repo_path = Path(locations.online_path).parent
    store = _store(locations, repo_path)
    store.apply(objects(locations.source_uri, locations.s3_endpoint))
    timings["feast_apply_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    entity_df = frame[["patient_id", "event_timestamp", LABEL]].copy()
    entity_df["event_timestamp"] = pd.Timestamp(as_of + timedelta(seconds=1))
    joined = store.get_historical_features(
        entity_df=entity_df, features=[f"{VIEW}:{name}" for name in features]
    ).to_df()
    joined = joined.sort_values("patient_id").reset_index(drop=True)
    timings["feast_historical_s"] = time.perf_counter() - t0
    if len(joined) != len(valid) or joined[features].isna().sum().sum() != valid[features].isna().sum().sum():
        raise RuntimeError(
            f"Feast point-in-time join returned {len(joined)} rows for {len(valid)} patients, or changed "
            "missing values: the offline source and the entity rows do not match"
        )
    if materialize:
        t0 = time.perf_counter()
        store.materialize(start_date=as_of - timedelta(days=1), end_date=datetime.now(UTC))
        timings["feast_materialize_s"] = time.perf_counter() - t0
    return joined[[*features, LABEL]], timings
