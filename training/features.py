"""The feature store, through Feast.

- Offline: measurements accumulate as Parquet partitioned by date (inference_core/feature_layout.py): a training
  dataset's rows when it is used, every scored batch's valid rows with patient ids.
- Training sets: the labels (patient, `diagnosed_at`, outcome) are joined point-in-time against the measurements,
  so each label gets the latest measurement taken at or before its diagnosis, never a later one.
- Online: Feast materialises the latest measurement per patient into DynamoDB (SQLite for runs without a cloud);
  the prediction function reads it by patient id.

Imputation and scaling are not here: they live in the model Pipeline so the ONNX model carries them.
"""

from __future__ import annotations

import io
import logging
import time
import urllib.parse
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from inference_core.feature_layout import (
    CREATED_COLUMN,
    ID_COLUMN,
    MEASUREMENTS_PREFIX,
    PROJECT,
    SOURCE_COLUMN,
    TIME_COLUMN,
    VIEW,
    partition_key,
)
from inference_core.schema import FEATURES, LABEL

from .imports import import_feast

LABEL_TIME = "diagnosed_at"


class FeatureStoreError(RuntimeError):
    """The feature store cannot give what was asked (the message says what and where)."""


@dataclass
class FeastConfig:
    offline_root: str  # folder of the measurements: a local path or s3://bucket/features/measurements/
    registry_path: str  # local path or s3:// URI
    online: Literal["sqlite", "dynamodb"] = "sqlite"
    online_path: str = ""  # SQLite file (online == "sqlite")
    table_template: str = "{project}.{table_name}"  # DynamoDB table name (online == "dynamodb")
    region: str = "us-east-1"
    dynamodb_endpoint: str | None = None  # the local cloud's; None on AWS
    s3_endpoint: str | None = None  # the local cloud's; None on AWS

    @property
    def source_path(self) -> str:
        return self.offline_root.rstrip("/") + "/"


def forget_s3_listings() -> None:
    """Feast reads the offline folder through s3fs, whose filesystem instances live as long as the process and cache
    each listing with every object's ETag. In a warm Lambda a later read of an object rewritten since (a retried
    batch, a dataset used again: a new ETag under KMS) then fails with FileExpired. Every read starts afresh."""
    try:
        import s3fs
    except ImportError:  # pragma: no cover - installed with feast[aws]
        return
    s3fs.S3FileSystem.clear_instance_cache()


def _no_file_registry_advice(record: logging.LogRecord) -> bool:
    """Feast advises, for any registry but SQL, that `serve_features_while_materializing` "typically has no effect";
    its file registry does read it (tests/unit/test_feature_store.py shows the join going on), so that advice is
    not logged in every step that opens the store."""
    return not record.getMessage().startswith("`serve_features_while_materializing` is enabled but `registry_type`")


logging.getLogger("feast.repo_config").addFilter(_no_file_registry_advice)


def open_store(config: FeastConfig):
    feast = import_feast()
    FeatureStore, RepoConfig = feast.FeatureStore, feast.RepoConfig

    forget_s3_listings()

    if config.online == "dynamodb":
        online = {"type": "dynamodb", "region": config.region, "table_name_template": config.table_template}
        if config.dynamodb_endpoint:
            online["endpoint_url"] = config.dynamodb_endpoint
    else:
        Path(config.online_path).parent.mkdir(parents=True, exist_ok=True)
        online = {"type": "sqlite", "path": config.online_path}
    if "://" not in config.registry_path:
        Path(config.registry_path).parent.mkdir(parents=True, exist_ok=True)
    repo = RepoConfig(
        project=PROJECT,
        provider="aws" if config.online == "dynamodb" else "local",
        # A materialization marks the view MATERIALIZING in the shared registry while it runs (for good, if its
        # process dies), and Feast then refuses every read of it, the training's point-in-time join included: a
        # training started while a batch's rows went online failed in Features (CI, 2026-12-01). Reads go on with
        # the last materialized values, as before Feast had view states; the next materialization ends the state.
        registry={
            "registry_type": "file",
            "path": config.registry_path,
            "serve_features_while_materializing": True,
        },
        online_store=online,
        offline_store={"type": "file"},
        entity_key_serialization_version=3,
        repo_path=Path(config.online_path or ".").parent,
    )
    return FeatureStore(config=repo)


def apply(config: FeastConfig):
    """Register the entity, source and view (idempotent; creates the online table where Feast manages it)."""
    import_feast()  # before the definitions' own `from feast import ...`
    from feature_repo.definitions import objects

    store = open_store(config)
    store.apply(objects(config.source_path, config.s3_endpoint))
    return store


# --- the offline store --------------------------------------------------------------------------------------------
MEASUREMENT_SCHEMA = pa.schema(
    [(ID_COLUMN, pa.string()), (TIME_COLUMN, pa.timestamp("us", tz="UTC"))]
    + [(f, pa.float64()) for f in FEATURES]
    + [(SOURCE_COLUMN, pa.string()), (CREATED_COLUMN, pa.timestamp("us", tz="UTC"))]
)


def measurement_table(frame: pd.DataFrame, source: str) -> pa.Table:
    """Rows with patient_id, measured_at and the features, in the offline store's schema."""
    out = {ID_COLUMN: frame[ID_COLUMN].astype(str), TIME_COLUMN: pd.to_datetime(frame[TIME_COLUMN], utc=True)}
    for f in FEATURES:
        out[f] = frame[f].astype("float64") if f in frame else np.nan
    out[SOURCE_COLUMN] = source
    out[CREATED_COLUMN] = pd.Timestamp.now(tz="UTC")
    return pa.Table.from_pandas(pd.DataFrame(out), schema=MEASUREMENT_SCHEMA, preserve_index=False)


def write_measurements(frame: pd.DataFrame, offline_root: str, source: str, s3=None) -> list[str]:
    """One Parquet file per measurement date under the offline root; the same source rewrites the same keys
    (a training dataset used twice adds nothing). Returns the written locations."""
    table = measurement_table(frame, source)
    days = pd.to_datetime(frame[TIME_COLUMN], utc=True).dt.strftime("%Y-%m-%d").to_numpy()
    parsed = urllib.parse.urlparse(offline_root)
    written = []
    for day in sorted(set(days)):
        part = table.filter(pa.array(days == day))
        key = partition_key(day, source).removeprefix(MEASUREMENTS_PREFIX)
        buf = io.BytesIO()
        pq.write_table(part, buf, compression="zstd")
        if parsed.scheme == "s3":
            if s3 is None:
                import boto3

                s3 = boto3.client("s3")
            full = parsed.path.lstrip("/").rstrip("/") + "/" + key
            s3.put_object(Bucket=parsed.netloc, Key=full, Body=buf.getvalue())
            written.append(f"s3://{parsed.netloc}/{full}")
        else:
            path = Path(offline_root) / key
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(buf.getvalue())
            written.append(str(path))
    return written


# --- training sets ------------------------------------------------------------------------------------------------
def point_in_time(store, labels: pd.DataFrame, features: list[str]) -> pd.DataFrame:
    """Each label row (patient_id, diagnosed_at, ...) with the latest measurement taken at or before diagnosed_at
    (Feast's point-in-time join). Rows keep their order; a label with no measurement before it gets NaN features."""
    forget_s3_listings()
    entity_df = labels.rename(columns={LABEL_TIME: "event_timestamp"}).copy()
    entity_df["event_timestamp"] = pd.to_datetime(entity_df["event_timestamp"], utc=True)
    keys = [ID_COLUMN, "event_timestamp"]
    # Feast keeps one row per (patient, time): labels that share both (visits with one diagnosis date) ask once
    unique = entity_df[keys].drop_duplicates().reset_index(drop=True)
    try:
        joined = store.get_historical_features(entity_df=unique, features=[f"{VIEW}:{f}" for f in features]).to_df()
    except ValueError as exc:
        if "cannot serve features" not in str(exc):
            raise
        # e.g. GENERATED: a materialization that found the view MATERIALIZING and then failed puts it there
        raise FeatureStoreError(
            f"{exc} A materialization that ends well makes it servable again: "
            "`diabetes-risk features materialize` (or the batch's next one)."
        ) from exc
    joined["event_timestamp"] = pd.to_datetime(joined["event_timestamp"], utc=True)
    # and leaves out a label whose patient has no measurement in the window: it comes back as NaN
    out = entity_df.merge(joined[[*keys, *features]], on=keys, how="left", validate="many_to_one")
    if len(out) != len(labels):
        raise FeatureStoreError(f"the point-in-time join returned {len(out)} rows for {len(labels)} labels")
    return out.rename(columns={"event_timestamp": LABEL_TIME})


def training_frame(
    config: FeastConfig, valid: pd.DataFrame, features: list[str], source: str, s3=None
) -> tuple[pd.DataFrame, dict]:
    """Write the dataset's measurements to the offline store, register the definitions, and build the training
    set by the point-in-time join of its labels. Returns features + label (+ ids and times) and a report."""
    report: dict = {}
    t0 = time.perf_counter()
    report["offline_files"] = len(write_measurements(valid, config.offline_root, source, s3=s3))
    store = apply(config)
    report["feast_apply_s"] = round(time.perf_counter() - t0, 3)
    t0 = time.perf_counter()
    labels = valid[[ID_COLUMN, LABEL_TIME, LABEL]]
    joined = point_in_time(store, labels, features)
    report["feast_historical_s"] = round(time.perf_counter() - t0, 3)
    no_measurement = joined[features].isna().all(axis=1)
    if no_measurement.any():  # cannot happen for the dataset's own rows; guards a broken offline store
        raise FeatureStoreError(  # a row number, not the patient's id: this message reaches logs and the run record
            f"{int(no_measurement.sum())} labels found no measurement at or before their diagnosis in "
            f"{config.offline_root} (first: training row {int(np.flatnonzero(no_measurement.to_numpy())[0]) + 1})"
        )
    same = np.isclose(
        joined[features].to_numpy(float), valid[features].to_numpy(float), equal_nan=True, rtol=0, atol=1e-9
    ).all(axis=1)
    report["rows"] = len(joined)
    report["rows_from_later_measurements"] = int((~same).sum())  # a newer measurement, still before the diagnosis
    return joined[[ID_COLUMN, LABEL_TIME, *features, LABEL]], report


def materialize(config: FeastConfig, start: datetime | None = None, end: datetime | None = None, store=None) -> dict:
    """Latest measurement per patient in [start, end] into the online store (Feast `materialize`); a patient whose
    newest measurement is older than `start` keeps its online row. Default: everything up to now."""
    store = store or apply(config)
    # batches keep rows dated up to a day ahead (clinics' clocks and time zones): the window covers them
    end = end or datetime.now(UTC) + timedelta(days=1)
    start = start or datetime(1970, 1, 2, tzinfo=UTC)
    t0 = time.perf_counter()
    forget_s3_listings()
    store.materialize(start_date=start, end_date=end + timedelta(seconds=1), feature_views=[VIEW])
    return {
        "start": start.isoformat(),
        "end": end.isoformat(),
        "seconds": round(time.perf_counter() - t0, 3),
    }
