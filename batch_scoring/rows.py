"""Row checks for a chunk, vectorised: the same ranges and missing-value rules as training and the API.

A row is rejected when a value is not a number, is outside the shared physiological range, or a required
value is missing; every problem is reported (row number, field, message). Other missing values are left to
the model's imputer, as in training. A 0 where 0 is impossible (Kaggle/NIDDK exports) means missing."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from inference_core.schema import RANGES, ZERO_MEANS_MISSING

from .reader import Chunk, cell_text, to_float


@dataclass
class CheckedChunk:
    X: np.ndarray  # valid rows only, model feature order, float32 with NaN for missing
    rows: np.ndarray  # their 1-based row numbers
    valid: np.ndarray  # bool mask over the chunk
    error_rows: list[int]
    error_fields: list[str]
    error_messages: list[str]
    missing: dict[str, int]  # imputed values among the valid rows, per feature
    columns: dict[str, np.ndarray]  # valid rows per feature, float64 as parsed (drift compares these)
    measured: dict[str, np.ndarray] | None = None  # valid rows of every feature in the file (the feature store keeps
    # them all, not only the serving model's: a later model may use a feature this one does not)

    @property
    def errors(self) -> int:
        return len(self.error_rows)


def check_chunk(chunk: Chunk, model_features: list[str], required_values: frozenset[str]) -> CheckedChunk:
    n = len(chunk.rows)
    valid = np.ones(n, bool)
    err_rows: list[np.ndarray] = []
    err_fields: list[str] = []
    err_messages: list[str] = []
    columns: dict[str, np.ndarray] = {}

    def report(idx: np.ndarray, name: str, messages) -> None:
        if len(idx):
            valid[idx] = False
            err_rows.append(chunk.rows[idx])
            err_fields.extend([name] * len(idx))
            err_messages.extend(messages)

    for name, arr in chunk.values.items():
        values, bad = to_float(arr)
        values = np.array(values, dtype=np.float64, copy=not values.flags.writeable)
        report(bad, name, [f"not a number: {cell_text(arr, int(i))}" for i in bad])
        lo, hi = RANGES[name]
        zero = values == 0 if name in ZERO_MEANS_MISSING else None
        if zero is not None and zero.any():
            values[zero] = np.nan
        with np.errstate(invalid="ignore"):
            out = np.flatnonzero((values < lo) | (values > hi))
        report(out, name, [f"{values[i]:g} is outside the range {lo:g} to {hi:g}" for i in out])
        if name in required_values:
            gone = np.isnan(values)
            gone[bad] = False
            idx = np.flatnonzero(gone)
            report(
                idx,
                name,
                [
                    "0 means not measured here, and a value is required"
                    if zero is not None and zero[i]
                    else "missing, and a value is required"
                    for i in idx
                ],
            )
        columns[name] = values
    for name in required_values - set(chunk.values):  # an optional column the settings require
        report(np.arange(n), name, ["missing, and a value is required"] * n)

    X = np.empty((int(valid.sum()), len(model_features)), np.float32)
    missing, kept = {}, {}
    for j, name in enumerate(model_features):
        col = columns[name][valid] if name in columns else np.full(len(X), np.nan)
        X[:, j] = col
        missing[name] = int(np.isnan(col).sum())
        kept[name] = col
    for row, message in chunk.bad_rows:
        err_rows.append(np.asarray([row], np.int64))
        err_fields.append("row")
        err_messages.append(message)
    rows = np.concatenate(err_rows) if err_rows else np.zeros(0, np.int64)
    measured = {name: values[valid] for name, values in columns.items()}
    return CheckedChunk(X, chunk.rows[valid], valid, rows.tolist(), err_fields, err_messages, missing, kept, measured)


def errors_table(checked: CheckedChunk) -> pa.Table:
    """Errors of one chunk in row order (field order within a row kept)."""
    order = np.argsort(np.asarray(checked.error_rows, np.int64), kind="stable")
    return pa.table(
        {
            "row": pa.array(np.asarray(checked.error_rows, np.int64)[order]),
            "field": pa.array([checked.error_fields[i] for i in order], pa.string()),
            "message": pa.array([checked.error_messages[i] for i in order], pa.string()),
        }
    )
