"""Score one table, chunk by chunk, into an output folder: predictions (Parquet, plus CSV for CSV input),
errors.csv and the summary the manifest is made of. Memory is bounded by the chunk size, not the file."""

from __future__ import annotations

import queue
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
from pydantic import BaseModel

from inference_core.model_store import LoadedModel
from inference_core.scoring import BANDS, probabilities, risk_band_indices

from .drift import DriftAccumulator, DriftReport
from .measurements import MeasurementSink
from .reader import Chunk, Source, UnreadableFile
from .rows import CheckedChunk, check_chunk, errors_table

BAND_NAMES = pa.array(BANDS, pa.string())
FORMULA_START = r"^[=+\-@\t\r]"  # what a spreadsheet reads as a formula (OWASP: CSV injection)


def spreadsheet_safe(table: pa.RecordBatch | pa.Table):
    """Text cells that a spreadsheet would run as a formula get a leading apostrophe, in CSV outputs only (the
    Parquet output keeps the values exactly)."""
    arrays = []
    for column in table.columns:
        if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
            risky = pc.fill_null(pc.match_substring_regex(column, FORMULA_START), False)
            column = pc.if_else(risky, pc.binary_join_element_wise(pa.scalar("'"), column, ""), column)
        arrays.append(column)
    return type(table).from_arrays(arrays, schema=table.schema)


ERRORS_SCHEMA = pa.schema([("row", pa.int64()), ("field", pa.string()), ("message", pa.string())])


class ScoreSummary(BaseModel):
    kind: str
    source_format: str
    features_found: list[str]
    ignored_columns: list[str]
    id_column: str | None
    rows_read: int
    rows_scored: int
    rows_rejected: int
    errors_by_field: dict[str, int]
    imputed_by_feature: dict[str, int]
    risk_bands: dict[str, int]
    drift: DriftReport
    timings_s: dict[str, float]
    outputs: list[str]


@dataclass
class Timer:
    """Seconds per phase. Reading, checking and drift run on one thread, scoring and writing on another, so
    the phases overlap: their sum is more than the wall time."""

    spent: dict[str, float] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, phase: str, since: float) -> float:
        now = time.perf_counter()
        with self.lock:
            self.spent[phase] += now - since
        return now


_DONE = object()


def _checked_ahead(
    source: Source, features: list[str], required_values: frozenset[str], drift: DriftAccumulator, timer: Timer
) -> Iterator[tuple[Chunk, CheckedChunk]]:
    """Read, check and profile the next chunks on a second thread while this one scores and writes: pyarrow,
    numpy and onnxruntime release the GIL, so the two stages share the cores. At most two chunks wait."""
    ahead: queue.Queue = queue.Queue(maxsize=2)
    stop = threading.Event()

    def produce() -> None:
        try:
            t = time.perf_counter()
            for chunk in source.chunks:
                t = timer.add("read", t)
                checked = check_chunk(chunk, features, required_values)
                t = timer.add("validate", t)
                drift.update(checked.columns)
                t = timer.add("drift", t)
                while not stop.is_set():
                    try:
                        ahead.put((chunk, checked), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
                t = time.perf_counter()
            ahead.put(_DONE)
        except BaseException as exc:  # handed to the consumer, raised there
            ahead.put(exc)

    worker = threading.Thread(target=produce, name="batch-read-ahead", daemon=True)
    worker.start()
    try:
        while (item := ahead.get()) is not _DONE:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        worker.join()


def score_table(
    source: Source,
    model: LoadedModel,
    out_dir: Path,
    drift: DriftAccumulator,
    required_values: frozenset[str],
    write_csv: bool,
    progress: Callable[[int], None] | None = None,
    challenger: LoadedModel | None = None,
    measurements: MeasurementSink | None = None,
) -> ScoreSummary:
    """Score every valid row with the champion (and, when there is one, the challenger: one more column, so a
    whole clinic file compares both). With a sink, the valid rows with patient ids are kept for the feature store."""
    features = model.pointer.features
    timer = Timer()
    schema = pa.schema(
        [("row", pa.int64())]
        + ([(source.id_column, pa.string())] if source.id_column else [])
        + [("probability", pa.float64()), ("risk_band", pa.string())]
        + ([("challenger_probability", pa.float64())] if challenger is not None else [])
    )
    outputs = ["predictions.parquet", "errors.csv"] + (["predictions.csv"] if write_csv else [])
    read = scored = rejected = 0
    errors_by_field: Counter[str] = Counter()
    imputed: Counter[str] = Counter({f: 0 for f in features})
    bands = np.zeros(3, np.int64)
    with ExitStack() as stack:
        parquet = stack.enter_context(pq.ParquetWriter(out_dir / "predictions.parquet", schema, compression="zstd"))
        errors = stack.enter_context(pcsv.CSVWriter(out_dir / "errors.csv", ERRORS_SCHEMA))
        csv_out = stack.enter_context(pcsv.CSVWriter(out_dir / "predictions.csv", schema)) if write_csv else None
        for chunk, checked in _checked_ahead(source, features, required_values, drift, timer):
            t = time.perf_counter()
            proba = np.clip(probabilities(model, checked.X), 0.0, 1.0) if len(checked.X) else np.zeros(0)
            band = risk_band_indices(proba, model.pointer.thresholds)
            t = timer.add("score", t)
            columns = [pa.array(checked.rows)]
            if source.id_column:
                columns.append(chunk.ids.filter(pa.array(checked.valid)).cast(pa.string()))
            columns += [pa.array(np.round(proba, 6)), BAND_NAMES.take(pa.array(band))]
            if challenger is not None:
                other = np.clip(probabilities(challenger, checked.X), 0.0, 1.0) if len(checked.X) else np.zeros(0)
                columns.append(pa.array(np.round(other, 6)))
            batch = pa.record_batch(columns, schema=schema)
            parquet.write_batch(batch)
            if csv_out is not None:
                csv_out.write_batch(spreadsheet_safe(batch))
            if measurements is not None and source.id_column:
                mask = pa.array(checked.valid)
                dates = chunk.dates.filter(mask) if chunk.dates is not None else None
                measurements.add(chunk.ids.filter(mask), dates, checked.measured)
            if checked.errors:
                errors.write_table(spreadsheet_safe(errors_table(checked)))
            timer.add("write", t)
            n = len(chunk.rows) + len(chunk.bad_rows)
            read += n
            scored += len(checked.X)
            rejected += n - len(checked.X)
            errors_by_field.update(checked.error_fields)
            imputed.update(checked.missing)
            bands += np.bincount(band, minlength=3)
            if progress:
                progress(read)
    if read == 0:
        raise UnreadableFile("the file has a header but no rows")
    return ScoreSummary(
        kind=source.kind,
        source_format=source.source_format,
        features_found=source.features,
        ignored_columns=source.ignored_columns,
        id_column=source.id_column,
        rows_read=read,
        rows_scored=scored,
        rows_rejected=rejected,
        errors_by_field=dict(errors_by_field),
        imputed_by_feature=dict(imputed),
        risk_bands={"low": int(bands[0]), "moderate": int(bands[1]), "high": int(bands[2])},
        drift=drift.report(),
        timings_s={k: round(v, 4) for k, v in timer.spent.items()},
        outputs=outputs,
    )
