"""Open a CSV or Parquet file as a stream of column chunks, mapped onto the canonical feature names.

Files are recognised by content (Parquet starts with PAR1), never trusted by name alone. A file that cannot
be read as a table at all raises `UnreadableFile` (the caller quarantines it); a row that cannot be read
(wrong number of fields) is reported by its row number and the rest of the file goes on."""

from __future__ import annotations

import codecs
import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import BinaryIO, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from inference_core.feature_layout import DATE_COLUMNS
from inference_core.schema import FEATURES, LABEL, canonical_names

SNIFF_BYTES = 64 * 1024
CSV_BLOCK_BYTES = 4 << 20


class UnreadableFile(ValueError):
    """The file is not a table this system can read (format, encoding, columns); the message says why."""


@dataclass
class Chunk:
    rows: np.ndarray  # 1-based data row numbers (header not counted), int64
    values: dict[str, pa.Array]  # canonical feature name -> raw column
    ids: pa.Array | None = None
    dates: pa.Array | None = None  # the measurement date column, when the file has one
    bad_rows: list[tuple[int, str]] = field(default_factory=list)  # rows the parser could not split


@dataclass
class Source:
    kind: Literal["csv", "parquet"]
    source_format: str
    features: list[str]  # canonical features present in the file
    ignored_columns: list[str]
    id_column: str | None
    chunks: Iterator[Chunk]
    date_column: str | None = None


class PeekReader(io.RawIOBase):
    """A forward-only binary stream that can show its first bytes before they are consumed."""

    def __init__(self, raw: BinaryIO) -> None:
        self.raw, self._head = raw, b""

    def peek(self, n: int) -> bytes:
        while len(self._head) < n:
            more = self.raw.read(n - len(self._head))
            if not more:
                break
            self._head += more
        return self._head[:n]

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        view = memoryview(buffer).cast("B")
        if self._head:
            n = min(len(view), len(self._head))
            view[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        data = self.raw.read(len(view))
        view[: len(data)] = data
        return len(data)


def sniff(head: bytes, name: str) -> Literal["csv", "parquet"]:
    """What the first bytes say the file is; UnreadableFile for anything but CSV text or Parquet."""
    if not head.strip():
        raise UnreadableFile("the file is empty")
    if head[:4] == b"PAR1":
        return "parquet"
    if name.lower().endswith((".parquet", ".pq")):
        raise UnreadableFile("named as Parquet but is not a Parquet file (no PAR1 magic bytes)")
    if head[:2] in (b"\xff\xfe", b"\xfe\xff"):
        raise UnreadableFile("UTF-16 text: save the file as UTF-8 CSV or as Parquet")
    if b"\x00" in head:
        raise UnreadableFile("binary content: expected a CSV (UTF-8 text) or Parquet file")
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
    except UnicodeDecodeError as exc:
        raise UnreadableFile(f"not UTF-8 text (byte {exc.start}): save the file as UTF-8 CSV or as Parquet") from exc
    return "csv"


def _map_columns(
    columns: list[str], required: list[str], id_column: str | None
) -> tuple[str, dict[str, str], list[str], str | None, str | None]:
    fmt, names = canonical_names([str(c) for c in columns])
    seen: dict[str, str] = {}
    for original, canonical in names.items():
        if canonical in FEATURES:
            if canonical in seen:
                raise UnreadableFile(f"columns {seen[canonical]!r} and {original!r} are both {canonical}")
            seen[canonical] = original
    missing = [f for f in required if f not in seen]
    if missing:
        found = ", ".join(str(c) for c in columns[:12]) + (" …" if len(columns) > 12 else "")
        raise UnreadableFile(
            f"required columns missing: {', '.join(missing)} (found: {found}). Use the canonical names "
            f"({', '.join(FEATURES)}) or a known export (MASS, Kaggle)"
        )
    id_original = next((c for c in columns if id_column and str(c).strip().lower() == id_column.lower()), None)
    lowered = {str(c).strip().lower(): c for c in reversed(columns)}
    date_original = next((lowered[d] for d in DATE_COLUMNS if d in lowered), None)
    ignored = [
        str(c)
        for c in columns
        if str(c) not in seen.values() and c not in (id_original, date_original) and names[str(c)] != LABEL
    ]
    return fmt, seen, ignored, id_original, date_original


def open_csv(
    stream: BinaryIO, name: str, required: list[str], id_column: str | None, chunk_bytes: int = CSV_BLOCK_BYTES
) -> Source:
    reader = stream if isinstance(stream, PeekReader) else PeekReader(stream)
    head = reader.peek(SNIFF_BYTES)
    sniff(head, name)
    text = head.decode("utf-8-sig", errors="ignore")
    try:
        header = next(csv.reader(io.StringIO(text.splitlines()[0] if text else "")))
    except (StopIteration, csv.Error) as exc:
        raise UnreadableFile("no header row: the first line must name the columns") from exc
    header = [h.strip() for h in header]
    if len(set(header)) != len(header):
        raise UnreadableFile("the header names a column twice")
    fmt, used, ignored, id_original, date_original = _map_columns(header, required, id_column)
    extra = [c for c in (id_original, date_original) if c]
    bad: list[tuple[int, str]] = []

    def on_invalid(row) -> str:
        # The physical row number is known because parsing is single-threaded (it is also faster here).
        bad.append((int(row.number) - 1, f"expected {row.expected_columns} fields, found {row.actual_columns}"))
        return "skip"

    try:
        batches = pcsv.open_csv(
            reader,
            read_options=pcsv.ReadOptions(use_threads=False, block_size=chunk_bytes, column_names=header, skip_rows=1),
            parse_options=pcsv.ParseOptions(invalid_row_handler=on_invalid),
            convert_options=pcsv.ConvertOptions(
                column_types={c: pa.string() for c in header},
                include_columns=[*used.values(), *extra],
                strings_can_be_null=True,
            ),
        )
    except pa.ArrowInvalid as exc:
        raise UnreadableFile(f"not a readable CSV file: {exc}") from exc

    def chunks() -> Iterator[Chunk]:
        kept, skipped = 0, np.zeros(0, np.int64)
        while True:
            try:
                batch = batches.read_next_batch()
            except StopIteration:
                break
            except pa.ArrowInvalid as exc:
                raise UnreadableFile(f"not a readable CSV file: {_arrow_message(exc)}") from exc
            reported, bad[:] = list(bad), []
            if reported:
                skipped = np.sort(np.concatenate([skipped, [r for r, _ in reported]]))
            rows = _row_numbers(kept, batch.num_rows, skipped)
            kept += batch.num_rows
            yield Chunk(
                rows=rows,
                values={f: batch.column(c) for f, c in used.items()},
                ids=batch.column(id_original) if id_original else None,
                dates=batch.column(date_original) if date_original else None,
                bad_rows=reported,
            )

    return Source("csv", fmt, list(used), ignored, id_original, chunks(), date_original)


def _row_numbers(kept: int, n: int, skipped: np.ndarray) -> np.ndarray:
    """Data row numbers of the next n parsed rows, counting the rows the parser skipped before them."""
    rows = np.arange(kept + 1, kept + n + 1, dtype=np.int64)
    if not len(skipped):
        return rows
    out = rows.copy()
    while True:  # r = n + (#skipped <= r): a fixed point, reached in a few rounds
        nxt = rows + np.searchsorted(skipped, out, side="right")
        if np.array_equal(nxt, out):
            return out
        out = nxt


def _arrow_message(exc: Exception) -> str:
    return str(exc).split("\n")[0][:300]


def check_id_type(name: str, t: pa.DataType) -> None:
    """Patient ids are copied into the CSV and Parquet outputs as text: text, numbers, dates and booleans are;
    lists, structs, maps and raw bytes are not (the file is quarantined with the reason, never retried)."""
    if pa.types.is_dictionary(t):  # pandas' category: judged by its values
        t = t.value_type
    ok = (
        pa.types.is_string(t)
        or pa.types.is_large_string(t)
        or pa.types.is_integer(t)
        or pa.types.is_floating(t)
        or pa.types.is_decimal(t)
        or pa.types.is_boolean(t)
        or pa.types.is_date(t)
        or pa.types.is_timestamp(t)
        or pa.types.is_null(t)
    )
    if not ok:
        raise UnreadableFile(
            f"column {name!r} holds {t}: patient ids must be text or numbers (rename the column if it is not an id)"
        )


def open_parquet(path: str, required: list[str], id_column: str | None, chunk_rows: int) -> Source:
    try:
        pf = pq.ParquetFile(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise UnreadableFile(f"not a readable Parquet file: {_arrow_message(exc)}") from exc
    header = list(pf.schema_arrow.names)
    fmt, used, ignored, id_original, date_original = _map_columns(header, required, id_column)
    if id_original:
        check_id_type(id_original, pf.schema_arrow.field(id_original).type)
    columns = [*used.values(), *[c for c in (id_original, date_original) if c]]

    def chunks() -> Iterator[Chunk]:
        kept = 0
        try:
            for batch in pf.iter_batches(batch_size=chunk_rows, columns=columns, use_threads=True):
                rows = np.arange(kept + 1, kept + batch.num_rows + 1, dtype=np.int64)
                kept += batch.num_rows
                yield Chunk(
                    rows,
                    {f: batch.column(c) for f, c in used.items()},
                    batch.column(id_original) if id_original else None,
                    batch.column(date_original) if date_original else None,
                )
        except (pa.ArrowInvalid, OSError) as exc:
            raise UnreadableFile(f"not a readable Parquet file: {_arrow_message(exc)}") from exc

    return Source("parquet", fmt, list(used), ignored, id_original, chunks(), date_original)


def to_float(arr: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """Values as float64 (missing = NaN) and the indices of cells that are not numbers."""
    t = arr.type
    if pa.types.is_floating(t) or pa.types.is_integer(t) or pa.types.is_decimal(t):
        return pc.cast(arr, pa.float64()).to_numpy(zero_copy_only=False), np.zeros(0, np.int64)
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        try:
            return pc.cast(arr, pa.float64()).to_numpy(zero_copy_only=False), np.zeros(0, np.int64)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            return _parse_cells(arr)  # some cell is not a plain number: cell by cell, this column of this chunk only
    return np.full(len(arr), np.nan), np.flatnonzero(np.asarray(arr.is_valid()))


def _parse_cells(arr: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """The slow path of `to_float`: Python's float() per cell (allows surrounding spaces), bad cells listed."""
    values = np.full(len(arr), np.nan)
    bad = []
    for i, text in enumerate(arr.to_pylist()):
        if text is None or not text.strip():
            continue
        try:
            values[i] = float(text.strip())
        except ValueError:
            bad.append(i)
    return values, np.asarray(bad, np.int64)


def cell_text(arr: pa.Array, i: int) -> str:
    return repr(str(arr[i].as_py())[:40])
