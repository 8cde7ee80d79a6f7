"""A scored batch's valid rows, kept for the feature store: the rows with a patient id, their measurement date (the
file's date column, else when the file arrived) and the values as checked, written as the offline store's Parquet
(inference_core/feature_layout.py), one file per measurement day and chunk. No pandas: pyarrow only, as the rest
of batch scoring.

Rows without an id, or with a date that cannot be read or lies in the future, are scored but not kept; the
manifest counts them."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pydantic import BaseModel

from inference_core.feature_layout import CREATED_COLUMN, ID_COLUMN, MAX_ID_CHARS, SOURCE_COLUMN, TIME_COLUMN
from inference_core.schema import FEATURES

SCHEMA = pa.schema(
    [(ID_COLUMN, pa.string()), (TIME_COLUMN, pa.timestamp("us", tz="UTC"))]
    + [(f, pa.float64()) for f in FEATURES]
    + [(SOURCE_COLUMN, pa.string()), (CREATED_COLUMN, pa.timestamp("us", tz="UTC"))]
)
FUTURE_SLACK = timedelta(days=1)  # clinics' clocks and time zones


class FeatureStoreWrite(BaseModel):
    """What a batch added to the offline store."""

    rows_stored: int
    rows_without_id: int
    rows_bad_date: int
    date_column: str | None
    days: list[str]
    keys: list[str] = []
    ingested_marker: str | None = None


def parse_dates(arr: pa.Array) -> pa.Array:
    """UTC timestamps from a date column (dates, timestamps or ISO 8601 text); null where a cell is not a date."""
    t = arr.type
    if pa.types.is_dictionary(t):
        arr, t = arr.dictionary_decode(), t.value_type
    if pa.types.is_timestamp(t):
        return pc.cast(arr, pa.timestamp("us", tz=t.tz or "UTC")).cast(pa.timestamp("us", tz="UTC"))
    if pa.types.is_date(t):
        return pc.cast(pc.cast(arr, pa.timestamp("us")), pa.timestamp("us", tz="UTC"))
    if not (pa.types.is_string(t) or pa.types.is_large_string(t)):
        return pa.nulls(len(arr), pa.timestamp("us", tz="UTC"))
    out = []
    for text in arr.to_pylist():  # clinic files are small per chunk; each cell may use another ISO form
        try:
            value = datetime.fromisoformat(text.strip()) if text and text.strip() else None
        except ValueError:
            value = None
        out.append(value.replace(tzinfo=UTC) if value and value.tzinfo is None else value)
    return pa.array(out, pa.timestamp("us", tz="UTC"))


@dataclass
class MeasurementSink:
    out_dir: Path
    source: str  # the batch's result name: the same file version always writes the same keys
    arrived_at: datetime  # the measurement time of rows when the file has no date column
    date_column: str | None = None
    rows_stored: int = 0
    rows_without_id: int = 0
    rows_bad_date: int = 0
    files: dict[str, list[Path]] = field(default_factory=dict)  # day -> local files
    _chunk: int = 0

    def add(self, ids: pa.Array, dates: pa.Array | None, columns: dict[str, np.ndarray]) -> None:
        """One chunk's valid rows (ids and dates already filtered to them; `columns` as the row checks left them)."""
        self._chunk += 1
        n = len(ids)
        ids = pc.utf8_trim_whitespace(ids.cast(pa.string()))
        has_id = pc.fill_null(
            pc.and_(pc.greater(pc.utf8_length(ids), 0), pc.less_equal(pc.utf8_length(ids), MAX_ID_CHARS)), False
        )
        if dates is None:
            when = pa.array(np.full(n, np.datetime64(self.arrived_at.replace(tzinfo=None), "us")), pa.timestamp("us"))
            when = when.cast(pa.timestamp("us", tz="UTC"))
        else:
            when = parse_dates(dates)
        latest = pa.scalar(datetime.now(UTC) + FUTURE_SLACK, pa.timestamp("us", tz="UTC"))
        good_date = pc.fill_null(pc.less_equal(when, latest), False)
        keep = pc.and_(has_id, good_date)
        self.rows_without_id += n - pc.sum(has_id).as_py() if n else 0
        self.rows_bad_date += int(pc.sum(pc.and_(has_id, pc.invert(good_date))).as_py() or 0) if n else 0
        if not n or not pc.any(keep).as_py():
            return
        arrays = [ids, when]
        for f in FEATURES:
            column = columns.get(f)
            arrays.append(
                pa.array(column, pa.float64(), from_pandas=True) if column is not None else pa.nulls(n, pa.float64())
            )
        arrays.append(pa.array([self.source] * n, pa.string()))
        arrays.append(pa.array([datetime.now(UTC)] * n, pa.timestamp("us", tz="UTC")))
        table = pa.Table.from_arrays(arrays, schema=SCHEMA).filter(keep)
        self.rows_stored += table.num_rows
        days = pc.strftime(table[TIME_COLUMN], format="%Y-%m-%d")
        for day in pc.unique(days).to_pylist():
            part = table.filter(pc.equal(days, day))
            path = self.out_dir / f"date={day}" / f"part-{self._chunk:05d}.parquet"
            path.parent.mkdir(parents=True, exist_ok=True)
            pq.write_table(part, path, compression="zstd")
            self.files.setdefault(day, []).append(path)

    def summary(self) -> FeatureStoreWrite:
        return FeatureStoreWrite(
            rows_stored=self.rows_stored,
            rows_without_id=self.rows_without_id,
            rows_bad_date=self.rows_bad_date,
            date_column=self.date_column,
            days=sorted(self.files),
        )
