"""Row-level rules (reported, dropped) and dataset-level rules (stop with a clear message)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from inference_core.schema import LABEL
from training.data import CellIssue, DataError
from training.validation import ValidationSettings, validate


def test_clean_bundled_data_passes(pima):
    train, _ = pima
    valid, report = validate(train.frame, train.issues)
    assert report.rows_in == report.rows_valid == 300 and report.failures == []
    assert "insulin" not in report.features_used  # absent from MASS: not a model feature
    assert report.class_counts == {"0": 194, "1": 106}
    assert len(valid) == 300


def test_out_of_range_duplicates_and_text_are_reported_by_row_and_dropped(pima):
    frame = pima[0].frame.head(80).copy()
    frame.loc[3, "glucose"] = 900  # row 4
    frame.loc[10, "age"] = 4  # row 11
    frame.loc[20, "glucose"] = np.nan  # row 21: text that failed to parse
    frame = pd.concat([frame, frame.iloc[[0]]], ignore_index=True)  # row 81 duplicates row 1
    issues = [CellIssue(21, "glucose", "not a number: 'high'")]
    valid, report = validate(frame, issues)
    by_row = {(f.row, f.column, f.rule) for f in report.failures}
    assert (4, "glucose", "out_of_range") in by_row
    assert (11, "age", "out_of_range") in by_row
    assert (21, "glucose", "not_a_number") in by_row
    assert (81, "*", "duplicate_row") in by_row
    assert report.rows_rejected == 4 and report.rows_valid == 77 == len(valid)
    assert report.failures_by_rule == {"out_of_range": 2, "not_a_number": 1, "duplicate_row": 1}
    assert 900 not in valid["glucose"].to_numpy()


def test_one_class_only_stops_with_class_named(pima):
    frame = pima[0].frame
    with pytest.raises(DataError, match=r"only 0 valid rows with diabetes \(1\)"):
        validate(frame[frame[LABEL] == 0])


def test_all_missing_required_feature_stops(pima):
    frame = pima[0].frame.copy()
    frame["glucose"] = np.nan
    with pytest.raises(DataError, match=r"required feature.*no values at all: glucose"):
        validate(frame)


def test_too_few_rows_stops_with_summary(pima):
    frame = pima[0].frame.head(30)
    with pytest.raises(DataError, match="only 30 valid rows, need at least 50"):
        validate(frame)
    _, report = validate(frame, settings=ValidationSettings(min_rows=20, min_per_class=5))
    assert report.rows_valid == 30


def test_label_missing_or_wrong_is_a_row_failure(pima):
    frame = pima[0].frame.head(60).copy()
    frame.loc[5, LABEL] = 3
    _, report = validate(frame)
    assert [(f.row, f.column, f.rule) for f in report.failures] == [(6, LABEL, "label_value")]
