"""Batch scoring: the streaming core (rows, formats, drift) and the S3 service (idempotence, quarantine,
failure, manifest last) with moto, and the handler with a sample S3 event."""

from __future__ import annotations

import importlib
import io
import json
import math
import urllib.parse

import boto3
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest
from pydantic import ValidationError

from batch_scoring.core import score_table
from batch_scoring.drift import DriftAccumulator
from batch_scoring.reader import UnreadableFile, open_csv, open_parquet
from batch_scoring.service import BatchScorer, result_name
from batch_scoring.settings import BatchSettings
from inference_core.contracts import Patient, ServingPointer
from inference_core.model_store import LoadedModel, ModelStore, ModelUnavailable, make_session
from inference_core.schema import FEATURES, RANGES
from tests.events.loader import FakeContext, load_event
from tests.unit.log_checks import patient_values_in
from tests.unit.predict_fixtures import BUCKET, build_champion, publish

TABLE = "idempotency"
BATCH = "batch-test"
REQUIRED = frozenset({"glucose", "bmi", "age"})


@pytest.fixture(scope="module")
def champion():
    return build_champion()


@pytest.fixture(scope="module")
def profile(champion):
    from training.data import load_bundled
    from training.profile import reference_profile

    return json.loads(json.dumps(reference_profile(load_bundled("train").frame, champion[1])))


@pytest.fixture(scope="module")
def model(champion):
    _, features, onnx_bytes, thresholds, _ = champion
    pointer = ServingPointer(
        model_name="diabetes-risk", model_version="1", family="logistic_regression", onnx_key="m", onnx_sha256="-",
        profile_key="p", model_card_key="c", features=features, thresholds=thresholds, metrics={},
        mlflow_run_id="r", training_data_uri="u", training_data_sha256="s", trained_at="t", promoted_at="t",
    )  # fmt: skip
    session = make_session(onnx_bytes, 1)
    return LoadedModel(pointer, session, session.get_inputs()[0].name, session.get_outputs()[-1].name, "e", 0.0)


def score_csv(text: str, model, tmp_path, profile=None, block=1 << 20, required=REQUIRED):
    out = tmp_path / "out"
    out.mkdir(exist_ok=True)
    features = model.pointer.features
    source = open_csv(io.BytesIO(text.encode()), "f.csv", features, "patient_id", block)
    drift = DriftAccumulator(profile, features, 0.2, 0.2, 10)
    summary = score_table(source, model, out, drift, required, True)
    predictions = pq.read_table(out / "predictions.parquet").to_pandas()
    errors = pd.read_csv(out / "errors.csv")
    return summary, predictions, errors


def rows_csv(rows: list[dict], columns: list[str]) -> str:
    lines = [",".join(columns)] + [",".join("" if r.get(c) is None else str(r[c]) for c in columns) for r in rows]
    return "\n".join(lines) + "\n"


GOOD = {"pregnancies": 2, "glucose": 138, "blood_pressure": 62, "skin_thickness": 35, "bmi": 33.6,
        "diabetes_pedigree": 0.127, "age": 47}  # fmt: skip


# --- rows -------------------------------------------------------------------------------------------------
def test_spreadsheet_safe_covers_every_formula_start_and_leaves_the_rest():
    from batch_scoring.core import spreadsheet_safe

    cells = ["=1", "+1", "-1", "@x", "\tx", "\rx", "x=1", "", None]
    out = spreadsheet_safe(pa.table({"v": cells, "n": list(range(len(cells)))}))
    assert out["v"].to_pylist() == ["'=1", "'+1", "'-1", "'@x", "'\tx", "'\rx", "x=1", "", None]
    assert out["n"].to_pylist() == list(range(len(cells)))


def test_csv_outputs_neutralise_cells_a_spreadsheet_would_run_as_formulas(model, tmp_path):
    features = model.pointer.features
    ids = ['=HYPERLINK("http://x")', "+1+1", "-2", "@SUM(A1)", "\tTAB", "plain", "a=b"]
    rows = [{"patient_id": i, **GOOD} for i in ids]
    text = rows_csv(rows, ["patient_id", *features])
    _, predictions, _ = score_csv(text, model, tmp_path)
    assert predictions["patient_id"].tolist() == ids  # Parquet keeps the values exactly
    csv_out = pd.read_csv(tmp_path / "out" / "predictions.csv", keep_default_na=False)
    assert csv_out["patient_id"].tolist() == ["'" + i for i in ids[:5]] + ["plain", "a=b"]
    bad = rows_csv([{"patient_id": "=1", **GOOD, "glucose": "=cmd|' /C calc'!A0"}], ["patient_id", *features])
    (tmp_path / "second").mkdir()
    _, _, errors = score_csv(bad, model, tmp_path / "second")
    assert not any(str(v).startswith(("=", "+", "-", "@")) for v in errors.values.ravel())


def test_bad_rows_are_reported_by_number_and_the_rest_scored_like_the_sklearn_pipeline(model, champion, tmp_path):
    pipeline, features = champion[0], champion[1]
    columns = ["patient_id", *features]
    rows = [
        {"patient_id": "A", **GOOD},
        {"patient_id": "B", **GOOD, "glucose": "abc"},
        {"patient_id": "C", **GOOD, "age": 150, "bmi": 5},
        {"patient_id": "D", **GOOD, "skin_thickness": None},  # imputed
        {"patient_id": "E", **GOOD, "bmi": None},  # required
        {"patient_id": "F", **GOOD, "glucose": 99.5},
    ]
    text = rows_csv(rows, columns).replace("\nE,", "\nX,1,2\nE,")  # a short row before E
    summary, predictions, errors = score_csv(text, model, tmp_path)
    assert (summary.rows_read, summary.rows_scored, summary.rows_rejected) == (7, 3, 4)
    assert predictions["row"].tolist() == [1, 4, 7] and predictions["patient_id"].tolist() == ["A", "D", "F"]
    assert errors.values.tolist() == [
        [2, "glucose", "not a number: 'abc'"],
        [3, "bmi", "5 is outside the range 10 to 80"],
        [3, "age", "150 is outside the range 18 to 120"],
        [5, "row", "expected 8 fields, found 3"],
        [6, "bmi", "missing, and a value is required"],
    ]
    expected = pipeline.predict_proba(pd.DataFrame([rows[0], rows[3], rows[5]])[features].astype(float))[:, 1]
    np.testing.assert_allclose(predictions["probability"], expected, atol=1e-5)
    assert summary.imputed_by_feature["skin_thickness"] == 1
    bands = model.pointer.thresholds
    for p, band in zip(predictions["probability"], predictions["risk_band"], strict=True):
        assert band == ("high" if p >= bands["high"] else "low" if p < bands["low"] else "moderate")
    csv_out = pd.read_csv(tmp_path / "out" / "predictions.csv")
    assert csv_out["patient_id"].tolist() == ["A", "D", "F"]


def test_row_rules_agree_with_the_prediction_api(model, tmp_path):
    """Random rows, some out of range: batch accepts a row exactly when the API's Patient model does."""
    rng = np.random.default_rng(3)
    rows = []
    for _ in range(400):
        row = {}
        for f in FEATURES:
            lo, hi = RANGES[f]
            v = float(rng.uniform(lo - 0.1 * (hi - lo), hi + 0.1 * (hi - lo)))
            row[f] = round(v, 3)
        if rng.random() < 0.3:
            row["insulin"] = None
        rows.append(row)
    required = frozenset(f for f in FEATURES if f != "insulin")  # what the API requires
    _summary, predictions, _ = score_csv(rows_csv(rows, list(FEATURES)), model, tmp_path, required=required)
    accepted = []
    for i, row in enumerate(rows, start=1):
        try:
            Patient(**{k: v for k, v in row.items() if v is not None})
            accepted.append(i)
        except ValidationError:
            pass
    assert 50 < len(accepted) < 350
    assert predictions["row"].tolist() == accepted


def test_kaggle_export_zeros_mean_missing_and_outcome_is_ignored(model, tmp_path):
    text = (
        "Pregnancies,Glucose,BloodPressure,SkinThickness,Insulin,BMI,DiabetesPedigreeFunction,Age,Outcome\n"
        "6,148,72,35,0,33.6,0.627,50,1\n"
        "1,85,66,0,0,26.6,0.351,31,0\n"
        "8,0,64,0,0,23.3,0.672,32,1\n"
        "1,89,0,23,94,0,0.167,21,0\n"
    )
    summary, predictions, errors = score_csv(text, model, tmp_path)
    assert summary.source_format == "kaggle" and summary.ignored_columns == []
    assert predictions["row"].tolist() == [1, 2]
    assert errors.values.tolist() == [
        [3, "glucose", "0 means not measured here, and a value is required"],
        [4, "bmi", "0 means not measured here, and a value is required"],
    ]
    assert summary.imputed_by_feature["skin_thickness"] == 1
    assert "insulin" not in summary.imputed_by_feature  # this champion does not use insulin


def test_row_numbers_hold_across_many_small_chunks(model, tmp_path):
    rows = [{"patient_id": f"P{i}", **GOOD, "age": 20 + i % 90} for i in range(3000)]
    text = rows_csv(rows, ["patient_id", *model.pointer.features])
    lines = text.splitlines()
    lines[1501] = "broken"  # data row 1501
    lines[2999] = lines[2999].replace(",47", ",999") if ",47" in lines[2999] else lines[2999] + "9"
    summary, predictions, errors = score_csv("\n".join(lines) + "\n", model, tmp_path, block=1 << 16)
    assert summary.rows_read == 3000 and summary.rows_scored == 2998
    assert errors["row"].tolist() == [1501, 2999]
    assert predictions["patient_id"].tolist() == [f"P{i - 1}" for i in range(1, 3001) if i not in (1501, 2999)]
    assert predictions["row"].tolist() == [i for i in range(1, 3001) if i not in (1501, 2999)]


@pytest.mark.parametrize(
    "data, name, message",
    [
        (b"", "a.csv", "the file is empty"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "scan.png", "binary content"),
        ("glucose,bmi\n1,2\n".encode("utf-16"), "a.csv", "UTF-16 text"),
        ("patient,glucose\nJosé,2\n".encode("latin-1"), "a.csv", "not UTF-8 text \\(byte 19\\)"),
        (
            b"glucose,bmi,age,pregnancies,blood_pressure,skin_thickness,diabetes_pedigree\n"
            + b"100,30,40,1,70,20,0.5\n" * 4000
            + b"100,3\xe90,40,1,70,20,0.5\n",
            "late.csv",
            "not a readable CSV file: .*UTF8",
        ),
        (b"pregnancies,glucose,age\n1,100,40\n", "a.csv", "required columns missing: blood_pressure"),
        (b"hello world, this is a letter\n", "a.txt", "required columns missing"),
        (b"not really parquet", "a.parquet", "named as Parquet"),
        (b"pregnancies,glucose,blood_pressure,skin_thickness,bmi,diabetes_pedigree,age\n", "h.csv", "no rows"),
        (b"glucose,glucose,bmi\n1,2,3\n", "d.csv", "names a column twice"),
    ],
)
def test_unreadable_files_say_why(model, tmp_path, data, name, message):
    with pytest.raises(UnreadableFile, match=message):
        source = open_csv(io.BytesIO(data), name, model.pointer.features, None)
        score_table(source, model, tmp_path, DriftAccumulator(None, [], 0.2, 0.2, 1), REQUIRED, True)


def test_parquet_in_chunks_gives_the_csv_answer(model, tmp_path):
    rows = [{**GOOD, "glucose": 80 + i % 200, "patient_id": f"P{i}"} for i in range(2500)]
    rows[10]["bmi"] = 500
    text = rows_csv(rows, ["patient_id", *model.pointer.features])
    _summary_csv, predictions_csv, _ = score_csv(text, model, tmp_path)
    path = tmp_path / "in.parquet"
    pq.write_table(pcsv.read_csv(io.BytesIO(text.encode())), path, row_group_size=700)
    source = open_parquet(str(path), model.pointer.features, "patient_id", chunk_rows=1000)
    out = tmp_path / "pq"
    out.mkdir()
    summary = score_table(source, model, out, DriftAccumulator(None, [], 0.2, 0.2, 1), REQUIRED, False)
    predictions = pq.read_table(out / "predictions.parquet").to_pandas()
    assert summary.kind == "parquet" and summary.outputs == ["predictions.parquet", "errors.csv"]
    assert summary.rows_rejected == 1 and not (out / "predictions.csv").exists()
    pd.testing.assert_frame_equal(predictions, predictions_csv)


# --- drift ------------------------------------------------------------------------------------------------
def test_drift_is_chunk_invariant_matches_numpy_and_flags_a_shift(model, profile, tmp_path, pima):
    train = pima[0].frame
    features = model.pointer.features
    same = train[features].sample(2000, replace=True, random_state=1).fillna({"bmi": 30})
    same["bmi"] = same["bmi"].fillna(30)
    base, _, _ = score_csv(same.to_csv(index=False), model, tmp_path, profile)
    chunked, _, _ = score_csv(same.to_csv(index=False), model, tmp_path, profile, block=1 << 15)
    assert base.drift.status == "ok" and base.drift.drifted_features == []
    assert base.drift.model_dump() == chunked.drift.model_dump()

    glucose = same["glucose"].dropna().to_numpy()
    ref = profile["features"]["glucose"]
    counts = np.histogram(np.clip(glucose, ref["bin_edges"][0], ref["bin_edges"][-1]), bins=ref["bin_edges"])[0]
    b = np.maximum(counts / len(glucose), 1e-4)
    e = np.maximum(np.asarray(ref["bin_fractions"]), 1e-4)
    assert math.isclose(base.drift.features["glucose"].psi, float(np.sum((b - e) * np.log(b / e))), abs_tol=1e-5)
    ks = max(abs(np.mean(glucose <= x) - c) for x, c in zip(ref["cdf_points"], ref["cdf"], strict=True))
    assert math.isclose(base.drift.features["glucose"].ks, ks, abs_tol=1e-5)

    shifted = same.assign(glucose=(same["glucose"] + 60).clip(upper=400))
    moved, _, _ = score_csv(shifted.to_csv(index=False), model, tmp_path, profile)
    assert moved.drift.status == "drift" and moved.drift.drifted_features == ["glucose"]
    assert moved.drift.features["glucose"].psi > 0.2 and moved.drift.features["glucose"].ks > 0.2


def test_drift_without_profile_or_rows(model, tmp_path):
    summary, _, _ = score_csv(rows_csv([GOOD], model.pointer.features), model, tmp_path, None)
    assert summary.drift.status == "no_profile"


# --- the S3 service ---------------------------------------------------------------------------------------
@pytest.fixture
def service(s3, champion, profile, monkeypatch):
    _, features, onnx_bytes, thresholds, explainer = champion
    s3.create_bucket(Bucket=BUCKET)
    s3.create_bucket(Bucket=BATCH)
    s3.put_bucket_versioning(Bucket=BATCH, VersioningConfiguration={"Status": "Enabled"})
    publish(s3, onnx_bytes, features, thresholds, explainer)
    s3.put_object(Bucket=BUCKET, Key="models/v1/p.json", Body=json.dumps(profile).encode())
    monkeypatch.setenv("DR_BATCH_BUCKET", BATCH)
    monkeypatch.setenv("DR_ARTIFACTS_BUCKET", BUCKET)
    monkeypatch.setenv("DR_IDEMPOTENCY_TABLE", TABLE)
    boto3.client("dynamodb", region_name="us-east-1").create_table(
        TableName=TABLE,
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )

    def make(**overrides):
        settings = BatchSettings(**overrides)
        return BatchScorer(s3, settings, ModelStore(s3, BUCKET, threads=1))

    return make


def keys(s3, prefix=""):
    return sorted(o["Key"] for o in s3.list_objects_v2(Bucket=BATCH, Prefix=prefix).get("Contents", []))


def test_drop_scores_once_per_object_version(service, s3, champion):
    scorer = service()
    body = rows_csv(
        [{**GOOD, "patient_id": "A"}, {**GOOD, "glucose": 900, "patient_id": "B"}], ["patient_id", *champion[1]]
    )
    put = s3.put_object(Bucket=BATCH, Key="inbox/clinic/day 1.csv", Body=body.encode())
    outcome = scorer.batch_score("inbox/clinic/day 1.csv", put["VersionId"])
    assert outcome.status == "scored"
    assert outcome.name == result_name("inbox/clinic/day 1.csv", put["VersionId"], put["ETag"])
    assert outcome.name.startswith("clinic/day_1-")
    prefix = f"outbox/{outcome.name}/"
    assert keys(s3, prefix) == [
        prefix + f for f in ("errors.csv", "manifest.json", "predictions.csv", "predictions.parquet")
    ]
    manifest = json.loads(s3.get_object(Bucket=BATCH, Key=prefix + "manifest.json")["Body"].read())
    import hashlib

    assert manifest["input"]["sha256"] == hashlib.sha256(body.encode()).hexdigest()
    assert manifest["input"]["version_id"] == put["VersionId"]
    assert (manifest["rows_read"], manifest["rows_scored"], manifest["rows_rejected"]) == (2, 1, 1)
    assert manifest["model"]["version"] == "1" and manifest["drift"]["status"] == "too_few_rows"
    assert manifest["challenger"] is None
    header = s3.get_object(Bucket=BATCH, Key=prefix + "predictions.csv")["Body"].read().decode().splitlines()[0]
    assert "challenger_probability" not in header
    assert {"read", "validate", "score", "write", "upload", "total"} <= set(manifest["timings_s"])

    before = s3.head_object(Bucket=BATCH, Key=prefix + "manifest.json")["LastModified"]
    again = scorer.batch_score("inbox/clinic/day 1.csv", put["VersionId"])  # S3 delivered it twice
    assert again.status == "duplicate" and again.name == outcome.name
    assert s3.head_object(Bucket=BATCH, Key=prefix + "manifest.json")["LastModified"] == before

    put2 = s3.put_object(Bucket=BATCH, Key="inbox/clinic/day 1.csv", Body=body.encode())  # a new version
    newer = scorer.batch_score("inbox/clinic/day 1.csv", put2["VersionId"])
    assert newer.status == "scored" and newer.name != outcome.name


def test_a_challenger_adds_its_probability_beside_the_champions(service, s3, champion):
    from inference_core.contracts import Rollout
    from tests.unit.predict_fixtures import model_ref

    pipeline, features, onnx_bytes, thresholds, explainer = champion
    other_pipeline, _, other_onnx, other_thresholds, _ = build_champion("xgboost")
    ref = model_ref(s3, other_onnx, features, other_thresholds, "2", "xgboost")
    publish(s3, onnx_bytes, features, thresholds, explainer, challenger=ref, rollout=Rollout(mode="shadow", share=0.1))
    rows = [
        {**GOOD, "patient_id": "A"},
        {**GOOD, "glucose": 900, "patient_id": "B"},
        {**GOOD, "glucose": 99, "patient_id": "C"},
    ]
    put = s3.put_object(
        Bucket=BATCH, Key="inbox/two-models.csv", Body=rows_csv(rows, ["patient_id", *features]).encode()
    )
    outcome = service().batch_score("inbox/two-models.csv", put["VersionId"])
    prefix = f"outbox/{outcome.name}/"
    table = pq.read_table(io.BytesIO(s3.get_object(Bucket=BATCH, Key=prefix + "predictions.parquet")["Body"].read()))
    frame = table.to_pandas()
    assert list(frame.columns) == ["row", "patient_id", "probability", "risk_band", "challenger_probability"]
    valid = pd.DataFrame([rows[0], rows[2]])[features]
    np.testing.assert_allclose(frame["probability"], pipeline.predict_proba(valid)[:, 1], atol=1e-5)
    np.testing.assert_allclose(frame["challenger_probability"], other_pipeline.predict_proba(valid)[:, 1], atol=1e-5)
    manifest = json.loads(s3.get_object(Bucket=BATCH, Key=prefix + "manifest.json")["Body"].read())
    assert manifest["challenger"] == {
        "version": "2",
        "family": "xgboost",
        "onnx_sha256": ref.onnx_sha256,
        "column": "challenger_probability",
    }
    # without a challenger: no extra column, no challenger in the manifest (test_drop_scores_once_per_object_version)


def test_a_challenger_on_other_features_is_left_out_of_the_batch(service, s3, champion):
    """The rows are checked against the champion's features; a challenger measured on others cannot score them."""
    from inference_core.contracts import Rollout
    from tests.unit.predict_fixtures import model_ref

    _, features, onnx_bytes, thresholds, explainer = champion
    ref = model_ref(s3, onnx_bytes, features[:-1], thresholds, "2", "logistic_regression")
    publish(s3, onnx_bytes, features, thresholds, explainer, challenger=ref, rollout=Rollout(mode="canary", share=0.1))
    put = s3.put_object(Bucket=BATCH, Key="inbox/other.csv", Body=rows_csv([GOOD], features).encode())
    outcome = service().batch_score("inbox/other.csv", put["VersionId"])
    assert outcome.status == "scored"
    manifest = json.loads(s3.get_object(Bucket=BATCH, Key=f"outbox/{outcome.name}/manifest.json")["Body"].read())
    assert manifest["challenger"] is None and manifest["rows_scored"] == 1


@pytest.mark.parametrize("body", [None, b"%PDF-1.7\n\x00\x01binary"], ids=["scored", "quarantined"])
@pytest.mark.parametrize(
    "key",
    ["inbox/clínica-ñ/" + "é" * 490 + "-export.csv", "inbox/clinic-north/" + "export-2026-" * 82 + ".csv"],
    ids=["non-ascii", "ascii"],
)
def test_a_key_near_s3s_limit_still_gets_readable_results(service, s3, body, model, key):
    scorer = service()
    assert 990 < len(key.encode()) <= 1024  # S3 allows 1,024 bytes
    data = body if body is not None else rows_csv([GOOD], model.pointer.features).encode()
    put = s3.put_object(Bucket=BATCH, Key=key, Body=data)
    outcome = scorer.batch_score(key, put["VersionId"])
    assert outcome.status == ("scored" if body is None else "quarantined")
    written = keys(s3, "outbox/") + keys(s3, "quarantine/")
    assert written and all(len(k.encode()) <= 1024 for k in written)
    assert all(k.isascii() for k in keys(s3, "outbox/"))
    other = key.replace("-export", "-other")  # shortens to the same readable stem: the tag tells them apart
    assert result_name(other, put["VersionId"], put["ETag"]) != outcome.name


@pytest.mark.parametrize(
    "id_values",
    [[[1, 2], [3]], [b"\x00\xff", b"\x01"], [{"a": 1}, {"a": 2}]],
    ids=["list", "binary", "struct"],
)
def test_a_parquet_patient_id_of_an_unsupported_type_is_quarantined_with_its_reason(service, s3, id_values):
    scorer = service()
    table = pa.table({"patient_id": id_values, **{f: [GOOD[f]] * 2 for f in GOOD}})
    sink = io.BytesIO()
    pq.write_table(table, sink)
    put = s3.put_object(Bucket=BATCH, Key="inbox/ids.parquet", Body=sink.getvalue())
    outcome = scorer.batch_score("inbox/ids.parquet", put["VersionId"])  # never an internal error to retry
    assert outcome.status == "quarantined"
    assert "'patient_id'" in outcome.failure.reason and "must be text or numbers" in outcome.failure.reason


def test_a_parquet_category_patient_id_is_accepted(service, s3):
    scorer = service()
    ids = pa.array(["A", "B"]).dictionary_encode()
    table = pa.table({"patient_id": ids, **{f: [GOOD[f]] * 2 for f in GOOD}})
    sink = io.BytesIO()
    pq.write_table(table, sink)
    put = s3.put_object(Bucket=BATCH, Key="inbox/cat.parquet", Body=sink.getvalue())
    assert scorer.batch_score("inbox/cat.parquet", put["VersionId"]).status == "scored"


@pytest.mark.parametrize("data, reason", [(b"%PDF-1.7\n\x00\x01binary", "binary content"), (b"", "the file is empty")])
def test_unreadable_file_moves_to_quarantine_with_its_reason(service, s3, data, reason):
    scorer = service()
    put = s3.put_object(Bucket=BATCH, Key="inbox/report.csv", Body=data)
    outcome = scorer.batch_score("inbox/report.csv", put["VersionId"])
    assert outcome.status == "quarantined" and reason in outcome.failure.reason
    moved = f"quarantine/{outcome.name}/report.csv"
    assert s3.get_object(Bucket=BATCH, Key=moved)["Body"].read() == data
    assert (
        reason
        in json.loads(s3.get_object(Bucket=BATCH, Key=f"quarantine/{outcome.name}/reason.json")["Body"].read())[
            "reason"
        ]
    )
    assert "inbox/report.csv" not in keys(s3, "inbox/")
    # nothing is lost: the original version is still there behind the delete marker
    assert s3.get_object(Bucket=BATCH, Key="inbox/report.csv", VersionId=put["VersionId"])["Body"].read() == data
    failed = json.loads(s3.get_object(Bucket=BATCH, Key=f"outbox/{outcome.name}/failed.json")["Body"].read())
    assert failed["kind"] == "unreadable" and failed["quarantined_to"] == moved
    assert f"outbox/{outcome.name}/manifest.json" not in keys(s3)
    assert scorer.batch_score("inbox/report.csv", put["VersionId"]).status == "duplicate"


def test_too_large_and_no_model_fail_with_a_reason_and_keep_the_input(service, s3):
    put = s3.put_object(Bucket=BATCH, Key="inbox/big.csv", Body=rows_csv([GOOD] * 50, list(GOOD)).encode())
    outcome = service(max_input_bytes=100).batch_score("inbox/big.csv", put["VersionId"])
    assert outcome.status == "failed" and outcome.failure.kind == "too_large"
    assert "Split it into several files" in outcome.failure.reason
    assert "inbox/big.csv" in keys(s3, "inbox/")

    s3.delete_object(Bucket=BUCKET, Key="serving/champion.json")
    with pytest.raises(ModelUnavailable):  # raised: Lambda retries (a model may be on its way), then dead-letters
        service().batch_score("inbox/big.csv", put["VersionId"])
    name = result_name("inbox/big.csv", put["VersionId"], put["ETag"])
    assert keys(s3, f"outbox/{name}/") == [f"outbox/{name}/failed.json"]
    failed = json.loads(s3.get_object(Bucket=BATCH, Key=f"outbox/{name}/failed.json")["Body"].read())
    assert failed["kind"] == "no_model" and "no champion model" in failed["reason"]


def test_failure_midway_leaves_no_manifest_and_no_partial_output(service, s3, monkeypatch):
    scorer = service()
    put = s3.put_object(Bucket=BATCH, Key="inbox/a.csv", Body=rows_csv([GOOD] * 5, list(GOOD)).encode())
    real_put = s3.put_object

    def broken(**kwargs):
        if kwargs["Key"].endswith("manifest.json"):
            raise RuntimeError("S3 went away")
        return real_put(**kwargs)

    monkeypatch.setattr(s3, "put_object", broken)
    with pytest.raises(RuntimeError, match="S3 went away"):
        scorer.batch_score("inbox/a.csv", put["VersionId"])
    name = result_name("inbox/a.csv", put["VersionId"], put["ETag"])
    assert keys(s3, "outbox/") == [f"outbox/{name}/failed.json"]
    monkeypatch.setattr(s3, "put_object", real_put)
    assert scorer.batch_score("inbox/a.csv", put["VersionId"]).status == "scored"  # the platform's retry
    assert f"outbox/{name}/failed.json" not in keys(s3)


@pytest.fixture
def handler_module(service, monkeypatch):
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "DiabetesRisk")
    import batch_score.app as module

    return importlib.reload(module)


def inbox_event(s3, key: str = "inbox/clinic north/day 1.csv", rows: int = 3) -> tuple[dict, dict]:
    put = s3.put_object(Bucket=BATCH, Key=key, Body=rows_csv([GOOD] * rows, list(GOOD)).encode())
    event = load_event("s3_put_inbox")
    event["Records"][0]["s3"]["object"]["versionId"] = put["VersionId"]
    return event, put


def test_a_repeated_delivery_after_completion_does_nothing(handler_module, s3, capfd):
    event, _ = inbox_event(s3)
    first = handler_module.handler(event, FakeContext())["results"][0]
    assert first["status"] == "scored"
    manifest_key = f"{first['result']}manifest.json"
    before = s3.head_object(Bucket=BATCH, Key=manifest_key)["LastModified"]
    calls = []
    real = handler_module.SCORER.batch_score
    handler_module.SCORER.batch_score = lambda *a, **k: calls.append(a) or real(*a, **k)
    again = handler_module.handler(load_event("s3_put_inbox") | {"Records": event["Records"]}, FakeContext())
    assert again["results"][0]["status"] == "duplicate" and calls == []  # answered from DynamoDB, no S3 work
    records = [json.loads(x) for x in capfd.readouterr().out.splitlines() if '"_aws"' in x]
    assert sum(r.get("RowsScored", [0])[0] for r in records) == 3  # counted once, by the first delivery
    assert [r["status"] for r in records if "Batches" in r] == ["scored", "duplicate"]
    assert s3.head_object(Bucket=BATCH, Key=manifest_key)["LastModified"] == before


def test_an_unversioned_delivery_is_keyed_by_its_etag_not_by_null(handler_module, s3):
    """S3 sends versionId "null" for a bucket without versioning: two different uploads of one key are two files."""
    event, _ = inbox_event(s3)
    obj = event["Records"][0]["s3"]["object"]
    obj["versionId"], obj["eTag"] = "null", "etag-one"
    assert handler_module.handler(event, FakeContext())["results"][0]["status"] == "scored"
    s3.put_object(Bucket=BATCH, Key="inbox/clinic north/day 1.csv", Body=rows_csv([GOOD] * 4, list(GOOD)).encode())
    obj["eTag"] = "etag-two"
    assert handler_module.handler(event, FakeContext(request_id="second"))["results"][0]["status"] == "scored"


def test_a_duplicate_delivery_during_a_live_invocation_does_nothing(handler_module, s3):
    event, _ = inbox_event(s3)
    real = handler_module.SCORER.batch_score
    nested = {}

    def while_scoring(*args, **kwargs):
        nested.update(handler_module.handler(event, FakeContext(request_id="dup"))["results"][0])
        return real(*args, **kwargs)

    handler_module.SCORER.batch_score = while_scoring
    first = handler_module.handler(event, FakeContext())["results"][0]
    assert first["status"] == "scored" and nested["status"] == "in_progress"
    assert len([k for k in keys(s3, "outbox/") if k.endswith("manifest.json")]) == 1


class Killed(BaseException):
    """What a timeout or an out-of-memory kill looks like from inside: no `except Exception` runs."""


@pytest.mark.parametrize(
    ("remaining_ms", "retry_id", "retry_status"),
    [
        (50, "another-delivery", "scored"),  # timed out: its in-progress record has expired
        (600_000, "req-killed", "scored"),  # killed early (out of memory): Lambda's retry keeps the request id
        (600_000, "another-delivery", "in_progress"),  # a second S3 delivery while it may still be running
    ],
)
def test_a_retry_after_a_killed_invocation_proceeds(handler_module, s3, remaining_ms, retry_id, retry_status):
    """The in-progress record expires with the killed invocation's remaining time, and the same request (Lambda's
    retry of the event) may take it over at once; another delivery is told 'in progress' until then."""
    import time

    event, _ = inbox_event(s3)
    real = handler_module.SCORER.batch_score

    def killed(*args, **kwargs):
        raise Killed

    handler_module.SCORER.batch_score = killed
    with pytest.raises(Killed):
        handler_module.handler(event, FakeContext(request_id="req-killed", remaining_ms=remaining_ms))
    handler_module.SCORER.batch_score = real
    time.sleep(0.2)
    retry = handler_module.handler(event, FakeContext(request_id=retry_id))["results"][0]
    assert retry["status"] == retry_status
    manifests = [k for k in keys(s3, "outbox/") if k.endswith("manifest.json")]
    assert len(manifests) == (1 if retry_status == "scored" else 0)


def test_an_internal_error_keeps_no_record_so_the_retry_scores(handler_module, s3, monkeypatch):
    event, _ = inbox_event(s3)
    real_put = s3.put_object
    broken = {"on": True}

    def flaky(**kwargs):
        if broken["on"] and kwargs["Key"].endswith("manifest.json"):
            raise RuntimeError("S3 went away")
        return real_put(**kwargs)

    monkeypatch.setattr(handler_module.SCORER.s3, "put_object", flaky)
    with pytest.raises(RuntimeError, match="S3 went away"):
        handler_module.handler(event, FakeContext())
    broken["on"] = False
    assert handler_module.handler(event, FakeContext(request_id="retry"))["results"][0]["status"] == "scored"


def test_drift_starts_training_only_when_enabled(service, s3, pima, monkeypatch):
    import boto3

    sfn = boto3.client("stepfunctions", region_name="us-east-1")
    iam = boto3.client("iam", region_name="us-east-1")
    role = iam.create_role(RoleName="sfn", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    arn = sfn.create_state_machine(
        name="training", definition='{"StartAt": "A", "States": {"A": {"Type": "Succeed"}}}', roleArn=role
    )["stateMachineArn"]
    frame = pima[0].frame.sample(500, replace=True, random_state=2)
    frame = frame.assign(glucose=(frame["glucose"] + 80).clip(upper=400), bmi=frame["bmi"].fillna(30))
    body = frame.drop(columns=["diabetes", "insulin"]).to_csv(index=False).encode()

    put = s3.put_object(Bucket=BATCH, Key="inbox/shifted.csv", Body=body)
    off = service(state_machine_arn=arn)
    off.sfn = sfn
    outcome = off.batch_score("inbox/shifted.csv", put["VersionId"])
    assert outcome.manifest.drift.status == "drift" and outcome.manifest.training_execution_arn is None
    assert sfn.list_executions(stateMachineArn=arn)["executions"] == []

    put = s3.put_object(Bucket=BATCH, Key="inbox/shifted.csv", Body=body)
    on = service(state_machine_arn=arn, drift_starts_training=True)
    on.sfn = sfn
    outcome = on.batch_score("inbox/shifted.csv", put["VersionId"])
    executions = sfn.list_executions(stateMachineArn=arn)["executions"]
    assert [e["executionArn"] for e in executions] == [outcome.manifest.training_execution_arn]
    assert (
        json.loads(sfn.describe_execution(executionArn=executions[0]["executionArn"])["input"])["train_uri"]
        == "bundled"
    )


def test_settings_refuse_unknown_required_features(monkeypatch):
    monkeypatch.setenv("DR_IDEMPOTENCY_TABLE", TABLE)
    monkeypatch.setenv("DR_BATCH_BUCKET", BATCH)
    monkeypatch.setenv("DR_ARTIFACTS_BUCKET", BUCKET)
    monkeypatch.setenv("DR_REQUIRED_VALUES", "glucose, cholesterol")
    with pytest.raises(ValidationError, match="unknown features: cholesterol"):
        BatchSettings()
    monkeypatch.setenv("DR_REQUIRED_VALUES", "glucose,age")
    assert BatchSettings().required_values == {"glucose", "age"}


# --- the handler ------------------------------------------------------------------------------------------
def test_handler_scores_inbox_records_and_emits_metrics(handler_module, s3, champion, capfd):
    module = handler_module
    body = rows_csv([{**GOOD, "patient_id": "A"}], ["patient_id", *champion[1]])
    put = s3.put_object(Bucket=BATCH, Key="inbox/clinic north/day 1.csv", Body=body.encode())
    event = load_event("s3_put_inbox")
    event["Records"][0]["s3"]["object"]["versionId"] = put["VersionId"]
    result = module.handler(event, FakeContext())
    assert len(result["results"]) == 1  # the outbox record is not the inbox's business
    assert result["results"][0]["status"] == "scored" and result["results"][0]["rows_scored"] == 1
    out = capfd.readouterr().out
    emf = [json.loads(line) for line in out.splitlines() if '"_aws"' in line]
    names = {m["Name"] for doc in emf for d in doc["_aws"]["CloudWatchMetrics"] for m in d["Metrics"]}
    assert {
        "Batches",
        "RowsScored",
        "RowsRejected",
        "BatchSeconds",
        "DriftDetected",
        "DriftPSI",
        "DriftKS",
    } <= names
    (batches,) = [doc for doc in emf if "Batches" in doc]
    assert (batches["status"], batches["service"], batches["Batches"]) == ("scored", "batch", [1.0])
    psi = [doc for doc in emf if "DriftPSI" in doc]
    assert {doc["feature"] for doc in psi} == set(champion[1]) and all(doc["service"] == "batch" for doc in psi)
    assert patient_values_in(out, (138, 33.6)) == []  # no patient values in logs


def test_a_scoring_failure_midway_stops_the_read_ahead_thread(model, tmp_path):
    import threading

    class Broken:
        calls = 0

        def run(self, *args, **kwargs):
            Broken.calls += 1
            if Broken.calls == 3:
                raise RuntimeError("onnxruntime failed")
            return model.session.run(*args, **kwargs)

    broken = model.__class__(model.pointer, Broken(), model.input_name, model.probability_output, "e", 0.0)
    rows = [{**GOOD, "age": 20 + i % 90} for i in range(5000)]
    source = open_csv(
        io.BytesIO(rows_csv(rows, model.pointer.features).encode()), "f.csv", model.pointer.features, None, 1 << 14
    )
    before = threading.active_count()
    with pytest.raises(RuntimeError, match="onnxruntime failed"):
        score_table(source, broken, tmp_path, DriftAccumulator(None, [], 0.2, 0.2, 1), REQUIRED, True)
    assert threading.active_count() == before


# --- the CLI ----------------------------------------------------------------------------------------------
def flat(text: str) -> str:
    """Rich wraps lines to the terminal width."""
    return " ".join(text.split())


def test_cli_score_refuses_a_missing_file(tmp_path):
    from typer.testing import CliRunner

    from diabetes_risk.cli import app

    result = CliRunner().invoke(app, ["score", str(tmp_path / "nope.csv"), "--bucket", BATCH])
    assert result.exit_code == 2 and "nope.csv: no such file" in flat(result.output)


def test_cli_score_uploads_waits_and_prints_the_summary_or_the_reason(service, s3, champion, tmp_path):
    """The batch-score function is played by a thread that scores whatever lands in the inbox."""
    import threading

    from typer.testing import CliRunner

    from diabetes_risk.cli import app

    scorer = service()
    stop = threading.Event()

    def function() -> None:
        seen = set()
        while not stop.is_set():
            for v in s3.list_object_versions(Bucket=BATCH, Prefix="inbox/").get("Versions", []):
                if v["VersionId"] not in seen:
                    seen.add(v["VersionId"])
                    scorer.batch_score(v["Key"], v["VersionId"])
            stop.wait(0.05)

    worker = threading.Thread(target=function, daemon=True)
    worker.start()
    try:
        good = tmp_path / "clinic.csv"
        good.write_text(rows_csv([GOOD, {**GOOD, "age": 7}], champion[1]))
        result = CliRunner().invoke(app, ["score", str(good), "--bucket", BATCH, "--wait", "--timeout", "20"])
        assert result.exit_code == 0, result.output
        out = flat(result.output)
        assert "scored 1 of 2 rows with model v1" in out and "rejected by field: age 1" in out
        assert "s3://batch-test/inbox/clinic.csv" in out

        bad = tmp_path / "photo.csv"
        bad.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
        result = CliRunner().invoke(app, ["score", str(bad), "--bucket", BATCH, "--wait", "--timeout", "20"])
        assert result.exit_code == 1 and "was not scored (unreadable): binary content" in flat(result.output)
        assert "quarantine/photo-" in result.output.replace("\n", "")
    finally:
        stop.set()
        worker.join()


def test_wait_for_result_times_out_with_a_hint(s3):
    from diabetes_risk.batch_client import Upload, WaitTimeout, wait_for_result

    s3.create_bucket(Bucket=BATCH)
    with pytest.raises(WaitTimeout, match="is the inbox notification deployed"):
        wait_for_result(s3, Upload(BATCH, "inbox/x.csv", None, "x-0"), timeout_s=0.3, poll_s=0.1)


# --- what Lambda gave up on -------------------------------------------------------------------------------------
def on_failure_record(key: str, version: str, error: str) -> str:
    """The message Lambda sends an on-failure destination after the last retry of an asynchronous invoke."""
    return json.dumps(
        {
            "version": "1.0",
            "requestContext": {"condition": "RetriesExhausted", "approximateInvokeCount": 3, "functionArn": "arn:fn"},
            "requestPayload": {
                "Records": [
                    {
                        "s3": {
                            "bucket": {"name": BATCH},
                            "object": {"key": urllib.parse.quote_plus(key), "versionId": version},
                        }
                    }
                ]
            },
            "responseContext": {"statusCode": 200, "functionError": "Unhandled"},
            "responsePayload": {"errorType": "RuntimeError", "errorMessage": error},
        }
    )


def test_the_dead_letter_of_an_upload_is_found_and_left_for_the_operator(aws_env):
    from moto import mock_aws

    from diabetes_risk.batch_client import dead_letter, dead_letters

    with mock_aws():
        sqs = boto3.client("sqs", region_name="us-east-1")
        url = sqs.create_queue(QueueName="dlq")["QueueUrl"]
        sqs.send_message(QueueUrl=url, MessageBody=on_failure_record("inbox/other.csv", "v1", "no"))
        sqs.send_message(QueueUrl=url, MessageBody="not json")
        sqs.send_message(QueueUrl=url, MessageBody=on_failure_record("inbox/clinic north/a.csv", "v2", "S3 went away"))
        found = dead_letter(sqs, url, BATCH, "inbox/clinic north/a.csv", "v2")
        assert found["condition"] == "RetriesExhausted" and found["attempts"] == 3
        assert found["error"]["errorMessage"] == "S3 went away"
        assert dead_letter(sqs, url, BATCH, "inbox/clinic north/a.csv", "another-version") is None
        assert len(dead_letters(sqs, url)) == 2  # still there: peeked, not consumed


def test_an_empty_dead_letter_queue_is_answered_from_its_counts_without_waiting_on_polls(aws_env):
    from moto import mock_aws

    from diabetes_risk.batch_client import dead_letters

    with mock_aws():
        sqs = boto3.client("sqs", region_name="us-east-1")
        url = sqs.create_queue(QueueName="dlq")["QueueUrl"]
        polls = []
        sqs.meta.events.register("before-call.sqs.ReceiveMessage", lambda **kw: polls.append(kw))
        assert dead_letters(sqs, url) == [] and polls == []
        sqs.send_message(QueueUrl=url, MessageBody=on_failure_record("inbox/a.csv", "v1", "no"))
        assert [r["key"] for r in dead_letters(sqs, url)] == ["inbox/a.csv"] and polls


def test_a_delayed_record_or_a_count_missing_from_the_answer_still_means_polling(aws_env):
    from moto import mock_aws

    from diabetes_risk.batch_client import dead_letters

    with mock_aws():
        sqs = boto3.client("sqs", region_name="us-east-1")
        url = sqs.create_queue(QueueName="dlq")["QueueUrl"]
        sqs.send_message(QueueUrl=url, MessageBody=on_failure_record("inbox/late.csv", "v1", "no"), DelaySeconds=5)
        polls = []
        sqs.meta.events.register("before-call.sqs.ReceiveMessage", lambda **kw: polls.append(kw))
        counts = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        assert counts["ApproximateNumberOfMessagesDelayed"] == "1" and counts["ApproximateNumberOfMessages"] == "0"
        dead_letters(sqs, url)
        assert polls  # only the delayed count was non-zero

        class NoCounts:  # a backend that leaves the counts out of its answer
            def get_queue_attributes(self, **kwargs):
                return {}

            def receive_message(self, **kwargs):
                polls.append(kwargs)
                return {}

        polls.clear()
        assert dead_letters(NoCounts(), url) == [] and polls


def test_waiting_stops_when_the_function_gave_up_and_keeps_waiting_through_retries(service, s3):
    from diabetes_risk.batch_client import Upload, wait_for_result

    put = s3.put_object(Bucket=BATCH, Key="inbox/w.csv", Body=b"x")
    upload = Upload(BATCH, "inbox/w.csv", put["VersionId"], result_name("inbox/w.csv", put["VersionId"], put["ETag"]))
    failed = {"kind": "internal", "reason": "RuntimeError: S3 went away"}
    s3.put_object(Bucket=BATCH, Key=upload.prefix + "failed.json", Body=json.dumps(failed).encode())
    checks = []

    def gave_up():  # the third look finds the event in the dead-letter queue
        checks.append(1)
        return {"condition": "RetriesExhausted", "attempts": 3, "error": {}} if len(checks) >= 3 else None

    kind, record = wait_for_result(s3, upload, 10, poll_s=0.01, dead_letters=gave_up)
    assert kind == "dead_letter" and record["attempts"] == 3 and record["failed"] == failed
    assert len(checks) == 3  # an internal failure alone did not end the wait: Lambda retries it


# --- the feature store --------------------------------------------------------------------------------------------
def test_valid_rows_with_patient_ids_go_to_the_offline_store_by_date_then_the_marker(service, s3, champion):
    import pyarrow.parquet as pq

    s3.create_bucket(Bucket="data-test")
    scorer = service(data_bucket="data-test")
    rows = [
        {**GOOD, "patient_id": "A", "measured_at": "2024-03-01"},
        {**GOOD, "glucose": 900, "patient_id": "B", "measured_at": "2024-03-01"},  # rejected: not kept
        {**GOOD, "glucose": 150, "patient_id": "C", "measured_at": "2024-03-02T10:15:00"},
        {**GOOD, "patient_id": "", "measured_at": "2024-03-02"},  # scored, no id: not kept
        {**GOOD, "patient_id": "D", "measured_at": "yesterday"},  # scored, unreadable date: not kept
    ]
    body = rows_csv(rows, ["patient_id", "measured_at", *champion[1]])
    put = s3.put_object(Bucket=BATCH, Key="inbox/clinic/ids.csv", Body=body.encode())
    outcome = scorer.batch_score("inbox/clinic/ids.csv", put["VersionId"])
    assert outcome.status == "scored" and outcome.manifest.rows_scored == 4
    stored = outcome.manifest.features
    assert (stored.rows_stored, stored.rows_without_id, stored.rows_bad_date) == (2, 1, 1)
    assert stored.date_column == "measured_at" and stored.days == ["2024-03-01", "2024-03-02"]
    listed = sorted(o["Key"] for o in s3.list_objects_v2(Bucket="data-test")["Contents"])
    assert listed == sorted([*stored.keys, stored.ingested_marker])
    assert stored.ingested_marker == f"features/ingested/2024-03-01/{outcome.name.replace('/', '-')}.json"
    tables = {
        k: pq.read_table(io.BytesIO(s3.get_object(Bucket="data-test", Key=k)["Body"].read())) for k in stored.keys
    }
    by_day = {k.split("/")[2]: t.to_pylist() for k, t in tables.items()}
    assert [r["patient_id"] for r in by_day["date=2024-03-01"]] == ["A"]
    (c,) = by_day["date=2024-03-02"]
    assert c["patient_id"] == "C" and c["glucose"] == 150.0 and c["insulin"] is None
    assert c["measured_at"].isoformat() == "2024-03-02T10:15:00+00:00" and c["source"] == outcome.name
    marker = json.loads(s3.get_object(Bucket="data-test", Key=stored.ingested_marker)["Body"].read())
    assert marker == {"source": outcome.name, "rows": 2, "days": ["2024-03-01", "2024-03-02"]}


def test_without_a_date_column_rows_are_measured_when_the_file_arrived_and_without_ids_nothing_is_kept(
    service, s3, champion
):
    s3.create_bucket(Bucket="data-test")
    scorer = service(data_bucket="data-test")
    put = s3.put_object(
        Bucket=BATCH, Key="inbox/a.csv", Body=rows_csv([{**GOOD, "patient_id": "A"}], ["patient_id", *champion[1]])
    )
    arrived = s3.head_object(Bucket=BATCH, Key="inbox/a.csv")["LastModified"]
    stored = scorer.batch_score("inbox/a.csv", put["VersionId"]).manifest.features
    assert stored.rows_stored == 1 and stored.date_column is None
    assert stored.days == [arrived.strftime("%Y-%m-%d")]
    put = s3.put_object(Bucket=BATCH, Key="inbox/b.csv", Body=rows_csv([GOOD], champion[1]))
    assert scorer.batch_score("inbox/b.csv", put["VersionId"]).manifest.features is None
    unset = service()  # no data bucket: the feature store is off
    put = s3.put_object(
        Bucket=BATCH, Key="inbox/c.csv", Body=rows_csv([{**GOOD, "patient_id": "Z"}], ["patient_id", *champion[1]])
    )
    assert unset.batch_score("inbox/c.csv", put["VersionId"]).manifest.features is None
    keys_now = [o["Key"] for o in s3.list_objects_v2(Bucket="data-test").get("Contents", [])]
    assert not any("/Z" in k or "c.csv" in k for k in keys_now) and len(keys_now) == 2


def test_a_redelivery_writes_a_missing_marker_and_every_feature_in_the_file_is_kept(service, s3, champion):
    import pyarrow.parquet as pq

    s3.create_bucket(Bucket="data-test")
    scorer = service(data_bucket="data-test")
    row = {**GOOD, "patient_id": "A", "measured_at": "2024-03-01", "insulin": 88}  # insulin: not the model's feature
    body = rows_csv([row], ["patient_id", "measured_at", "insulin", *champion[1]])
    put = s3.put_object(Bucket=BATCH, Key="inbox/m.csv", Body=body.encode())
    stored = scorer.batch_score("inbox/m.csv", put["VersionId"]).manifest.features
    (key,) = stored.keys
    table = pq.read_table(io.BytesIO(s3.get_object(Bucket="data-test", Key=key)["Body"].read())).to_pylist()
    assert "insulin" not in champion[1] and table[0]["insulin"] == 88.0
    s3.delete_object(Bucket="data-test", Key=stored.ingested_marker)  # the first invocation stopped before it
    assert scorer.batch_score("inbox/m.csv", put["VersionId"]).status == "duplicate"
    assert s3.head_object(Bucket="data-test", Key=stored.ingested_marker)["ContentLength"] > 0


def test_the_batch_client_awaits_results_without_the_scoring_stack():
    """`diabetes-risk score --wait` and `runs` (dead letters) read S3 objects only: loading the scoring service with
    them cost ≈ 1 s of every such command (pandas, the ONNX runtime)."""
    from tests.unit.fresh_python import in_a_fresh_python

    code = "import sys, diabetes_risk.batch_client; print(' '.join(sorted(sys.modules)))"
    loaded = set(in_a_fresh_python(code).split())
    assert "diabetes_risk.batch_client" in loaded
    assert not loaded & {"pandas", "onnxruntime", "numpy", "batch_scoring.service", "batch_scoring.core"}
