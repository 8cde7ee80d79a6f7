"""Where and how measurements are kept for the feature store: one place, no heavy imports, so batch scoring
(pyarrow), training (pandas + Feast) and serving agree on names.

Offline store: Parquet under `s3://<data bucket>/features/measurements/date=YYYY-MM-DD/<source>.parquet`, one row
per measurement: `patient_id` (text), `measured_at` (UTC timestamp), the canonical features (float64, missing =
null), `source` (the dataset or batch the row came from) and `created_at` (when it was written). Feast's FileSource
reads the folder; its point-in-time join and its materialisation use `measured_at`. Online store: Feast's DynamoDB
store, one item per patient.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from .schema import FEATURES

PROJECT = "diabetes_risk"
VIEW = "patient_measurements"
MEASUREMENTS_PREFIX = "features/measurements/"
# one small JSON per batch that added measurements (`{"source", "rows", "start"}`): S3 invokes the materialisation
# on it, once per batch rather than once per date file
INGESTED_PREFIX = "features/ingested/"
ID_COLUMN = "patient_id"
TIME_COLUMN = "measured_at"
SOURCE_COLUMN = "source"
# when the row was written: of two rows for one patient at one time, Feast takes the later-written (a correction)
CREATED_COLUMN = "created_at"
COLUMNS = (ID_COLUMN, TIME_COLUMN, *FEATURES, SOURCE_COLUMN, CREATED_COLUMN)
# What a clinic file may call its measurement date (first match, case-insensitive)
DATE_COLUMNS = ("measured_at", "measurement_date", "visit_date", "date")
MAX_ID_CHARS = 128
_UNSAFE = re.compile(r"[^A-Za-z0-9._=-]+")


def partition_key(day: str, source: str) -> str:
    """The object key of one source's measurements taken on one day (YYYY-MM-DD)."""
    return f"{MEASUREMENTS_PREFIX}date={day}/{_UNSAFE.sub('-', source)[:200]}.parquet"


def day_of(key: str) -> str | None:
    """The partition date in an offline-store key, or None for a key outside it."""
    match = re.match(re.escape(MEASUREMENTS_PREFIX) + r"date=(\d{4}-\d{2}-\d{2})/", key)
    return match.group(1) if match else None


def ingested_key(start_day: str, source: str) -> str:
    """The marker a batch leaves after adding measurements; its first measurement day is in the key."""
    return f"{INGESTED_PREFIX}{start_day}/{_UNSAFE.sub('-', source)[:200]}.json"


def ingested_day(key: str) -> str | None:
    match = re.match(re.escape(INGESTED_PREFIX) + r"(\d{4}-\d{2}-\d{2})/", key)
    return match.group(1) if match else None


def online_table_name(template: str) -> str:
    """The DynamoDB table Feast's online store uses for the view, from its `table_name_template`."""
    return template.format(project=PROJECT, table_name=VIEW)


def utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
