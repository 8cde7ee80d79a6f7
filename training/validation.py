"""Validate a canonical table with pandera: report every failing row, keep the valid ones.

Row-level problems (a value out of range, text in a number column, a bad label, a duplicate row) drop
that row and are reported with its row number. Dataset-level problems (too few rows, too few examples
of a class, a required feature with no values at all) stop the pipeline with a clear message.
"""

from __future__ import annotations

from collections import Counter

import pandas as pd
import pandera.pandas as pa
from pandera.errors import SchemaErrors
from pydantic import BaseModel, Field

from inference_core.schema import FEATURES, LABEL, OPTIONAL_FEATURES, RANGES

from .data import KEY_COLUMNS, CellIssue, DataError


class RowFailure(BaseModel):
    row: int = Field(description="1-based data row number in the input (header not counted)")
    column: str
    rule: str
    value: str | None = None


class ValidationReport(BaseModel):
    rows_in: int
    rows_valid: int
    rows_rejected: int
    failures_by_rule: dict[str, int]
    failures: list[RowFailure]
    missing_by_feature: dict[str, int]
    class_counts: dict[str, int]
    features_used: list[str]

    def summary(self) -> str:
        rules = ", ".join(f"{k}: {v}" for k, v in sorted(self.failures_by_rule.items())) or "none"
        return f"{self.rows_valid}/{self.rows_in} rows valid, {self.rows_rejected} rejected ({rules})"


class ValidationSettings(BaseModel):
    min_rows: int = 50
    min_per_class: int = 10


def _schema(with_label: bool) -> pa.DataFrameSchema:
    columns = {
        name: pa.Column(float, pa.Check.in_range(lo, hi), nullable=True, coerce=True, title=f"{name} in [{lo}, {hi}]")
        for name, (lo, hi) in RANGES.items()
    }
    if with_label:
        columns[LABEL] = pa.Column(float, pa.Check.isin([0.0, 1.0]), nullable=False, coerce=True)
    return pa.DataFrameSchema(
        columns, strict=True, unique=list(columns), report_duplicates="exclude_first", ordered=False
    )


def validate(
    frame: pd.DataFrame,
    cell_issues: list[CellIssue] | None = None,
    settings: ValidationSettings | None = None,
    with_label: bool = True,
) -> tuple[pd.DataFrame, ValidationReport]:
    """Returns the valid rows (index reset) and the report. Raises DataError if nothing usable remains."""
    settings = settings or ValidationSettings()
    failures: list[RowFailure] = [
        RowFailure(
            row=i.row,
            column=i.column,
            rule="label_value" if i.column == LABEL else "invalid_key" if i.column in KEY_COLUMNS else "not_a_number",
            value=i.message,
        )
        for i in (cell_issues or [])
    ]
    # Cells that were not numbers are already NaN; a NaN label is reported above, not again below.
    bad_rows = {f.row - 1 for f in failures}
    duplicate_rows: set[int] = set()
    try:
        # the keys (patient_id and the dates) were checked when read; the schema is the features' and the label's
        _schema(with_label).validate(frame.drop(columns=[c for c in KEY_COLUMNS if c in frame]), lazy=True)
    except SchemaErrors as exc:
        cases = exc.failure_cases
        for case in cases.itertuples(index=False):
            if pd.isna(case.index):
                continue
            row = int(case.index)
            if case.column == LABEL and row in bad_rows:
                continue
            rule = _rule_name(str(case.check), str(case.column))
            if rule == "duplicate_row":
                if row not in duplicate_rows:
                    duplicate_rows.add(row)
                    failures.append(
                        RowFailure(row=row + 1, column="*", rule=rule, value="same values as an earlier row")
                    )
                bad_rows.add(row)
                continue
            failures.append(
                RowFailure(
                    row=row + 1,
                    column=str(case.column or "*"),
                    rule=rule,
                    value=None if pd.isna(case.failure_case) else str(case.failure_case),
                )
            )
            bad_rows.add(row)
    failures.sort(key=lambda f: (f.row, f.column))
    valid = frame.drop(index=sorted(bad_rows)).reset_index(drop=True) if bad_rows else frame.copy()

    features_used = [f for f in FEATURES if valid[f].notna().any() or f not in OPTIONAL_FEATURES]
    empty_required = [f for f in FEATURES if f not in OPTIONAL_FEATURES and valid[f].isna().all()]
    report = ValidationReport(
        rows_in=len(frame),
        rows_valid=len(valid),
        rows_rejected=len(frame) - len(valid),
        failures_by_rule=dict(Counter(f.rule for f in failures)),
        failures=failures,
        missing_by_feature={f: int(valid[f].isna().sum()) for f in FEATURES},
        class_counts=(
            {str(int(k)): int(v) for k, v in valid[LABEL].value_counts().sort_index().items()} if with_label else {}
        ),
        features_used=[f for f in features_used if f not in empty_required],
    )
    if empty_required and len(valid):
        raise DataError(f"required feature(s) with no values at all: {', '.join(empty_required)} ({report.summary()})")
    if len(valid) < settings.min_rows:
        raise DataError(f"only {len(valid)} valid rows, need at least {settings.min_rows} ({report.summary()})")
    if with_label:
        for cls, name in ((0, "without diabetes (0)"), (1, "with diabetes (1)")):
            count = report.class_counts.get(str(cls), 0)
            if count < settings.min_per_class:
                raise DataError(
                    f"only {count} valid rows {name}, need at least {settings.min_per_class} "
                    f"per class ({report.summary()})"
                )
    return valid, report


def _rule_name(check: str, column: str) -> str:
    if check.startswith("in_range"):
        return "out_of_range"
    if check.startswith("isin"):
        return "label_value"
    if "duplicate" in check or check == "field_uniqueness" or "unique" in check:
        return "duplicate_row"
    if "nullable" in check or "not_nullable" in check:
        return "missing_value" if column != LABEL else "label_missing"
    return check
