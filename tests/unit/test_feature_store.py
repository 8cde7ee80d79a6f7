"""The feature store: ids and dates, the offline store's point-in-time join (no leakage), Feast's DynamoDB online
store read back by the light reader, and a scored batch's rows in the same offline folder."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import boto3
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from moto import mock_aws

from inference_core.feature_layout import ingested_day, ingested_key, online_table_name, partition_key
from inference_core.online_features import OnlineFeatures, UndecodableValue, decode_value, entity_id, entity_key
from inference_core.schema import FEATURES, LABEL
from tests.unit.fresh_python import in_a_fresh_python
from training.data import DataError, DatasetRef, load_table
from training.features import (
    FeastConfig,
    FeatureStoreError,
    apply,
    materialize,
    point_in_time,
    training_frame,
    write_measurements,
)
from training.identity import SCREENING_DAYS, with_identity
from training.validation import validate

T0 = datetime(2024, 1, 10, 9, tzinfo=UTC)


def measurement(patient: str, when: datetime, glucose: float, **extra) -> dict:
    base = dict.fromkeys(FEATURES, 1.0) | {"insulin": np.nan, "bmi": 30.0, "age": 40.0}
    return {"patient_id": patient, "measured_at": when, **base, "glucose": glucose, **extra}


def config(tmp_path, **over) -> FeastConfig:
    return FeastConfig(
        **{
            "offline_root": str(tmp_path / "measurements"),
            "registry_path": str(tmp_path / "registry.db"),
            "online_path": str(tmp_path / "online.db"),
            **over,
        }
    )


# --- ids and dates ----------------------------------------------------------------------------------------------
def test_bundled_data_gets_stable_ids_and_dates_with_diagnosis_after_measurement(pima):
    train = pima[0]
    first, how = with_identity(train.frame, train.ref)
    again, _ = with_identity(train.frame, train.ref)
    assert how == "derived"
    assert first["patient_id"].iloc[0] == "pima-tr2-0001" and first["patient_id"].is_unique
    pd.testing.assert_frame_equal(first, again)  # deterministic: the same bytes give the same ids and dates
    assert set(first["measured_at"]) <= set(SCREENING_DAYS)
    gap = (first["diagnosed_at"] - first["measured_at"]).dt.days
    assert gap.between(7, 90).all()
    other = DatasetRef(uri="s3://b/k.csv", sha256="ab" * 32, rows=len(train.frame))
    shifted, _ = with_identity(train.frame, other)
    assert not shifted["measured_at"].equals(first["measured_at"])  # seeded by the dataset's bytes


def test_a_clinic_file_keeps_its_ids_and_dates_and_bad_ones_are_row_failures(tmp_path):
    path = tmp_path / "clinic.csv"
    rows = [
        "patient_id,visit_date,glucose,blood_pressure,skin_thickness,bmi,diabetes_pedigree,age,pregnancies,diabetes",
        "c-1,2024-02-01,120,70,30,31,0.5,44,1,0",
        "c-2,not a date,150,70,30,31,0.5,44,1,1",
        ",2024-02-03,130,70,30,31,0.5,44,1,0",
    ]
    rows += [f"c-{i},2024-02-{i % 27 + 1:02d},{100 + i},70,30,31,0.5,{30 + i % 40},1,{i % 2}" for i in range(3, 70)]
    path.write_text("\n".join(rows) + "\n")
    table = load_table(str(path))
    valid, report = validate(table.frame, table.issues)
    assert {(f.row, f.column, f.rule) for f in report.failures} >= {
        (2, "measured_at", "invalid_key"),
        (3, "patient_id", "invalid_key"),
    }
    framed, how = with_identity(valid, table.ref)
    assert how == "file" and framed["patient_id"].iloc[0] == "c-1"
    assert framed["measured_at"].iloc[0] == pd.Timestamp("2024-02-01", tz="UTC")
    assert (framed["diagnosed_at"] == framed["measured_at"]).all()  # no diagnosis date: the visit's outcome


def test_ids_without_dates_and_a_diagnosis_before_its_measurement_are_refused():
    ref = DatasetRef(uri="clinic.csv", sha256="0" * 64)
    frame = pd.DataFrame([measurement("a", T0, 100.0)])
    with pytest.raises(DataError, match="has patient_id but no measured_at"):
        with_identity(frame.drop(columns=["measured_at"]), ref)
    late = frame.assign(diagnosed_at=T0 - timedelta(days=1))
    with pytest.raises(DataError, match="measured after their diagnosis"):
        with_identity(late, ref)


# --- the offline store and the point-in-time join ------------------------------------------------------------------
def test_a_measurement_taken_after_the_diagnosis_never_leaks_into_the_training_row(tmp_path):
    cfg = config(tmp_path)
    measurements = pd.DataFrame(
        [
            measurement("p1", T0, 110.0),  # before the diagnosis
            measurement("p1", T0 + timedelta(days=20), 250.0),  # after it: must not be used
            measurement("p2", T0 - timedelta(days=3), 95.0),
            measurement("p2", T0 + timedelta(days=2), 99.0),  # p2's diagnosis is later: this one is the latest before
        ]
    )
    write_measurements(measurements, cfg.offline_root, "clinic")
    store = apply(cfg)
    labels = pd.DataFrame(
        {
            "patient_id": ["p1", "p2"],
            "diagnosed_at": [T0 + timedelta(days=10), T0 + timedelta(days=5)],
            LABEL: [1.0, 0.0],
        }
    )
    joined = point_in_time(store, labels, ["glucose", "bmi"])
    assert joined["patient_id"].tolist() == ["p1", "p2"]
    assert joined["glucose"].tolist() == [110.0, 99.0]
    assert joined[LABEL].tolist() == [1.0, 0.0]


def test_training_frame_uses_a_newer_pre_diagnosis_measurement_and_refuses_a_label_with_none(tmp_path):
    cfg = config(tmp_path)
    valid = pd.DataFrame([measurement("p1", T0, 110.0), measurement("p2", T0, 120.0)])
    valid["diagnosed_at"] = [T0 + timedelta(days=30), T0 + timedelta(days=30)]
    valid[LABEL] = [1.0, 0.0]
    # a batch measured p1 again, before the diagnosis: the training row takes it
    write_measurements(pd.DataFrame([measurement("p1", T0 + timedelta(days=5), 140.0)]), cfg.offline_root, "batch-1")
    frame, report = training_frame(cfg, valid, ["glucose", "bmi"], "train-x")
    assert frame["glucose"].tolist() == [140.0, 120.0] and report["rows_from_later_measurements"] == 1

    orphan = valid.assign(patient_id=["p1", "nobody"]).iloc[[1]]
    with pytest.raises(FeatureStoreError, match=r"1 labels found no measurement .*\(first: training row 1\)"):
        training_frame(cfg, orphan.assign(measured_at=T0 + timedelta(days=60)), ["glucose"], "other")


def test_offline_keys_are_partitioned_by_day_and_markers_name_their_first_day():
    assert partition_key("2024-03-01", "batch/a b") == "features/measurements/date=2024-03-01/batch-a-b.parquet"
    key = ingested_key("2024-03-01", "clinic-v1")
    assert ingested_day(key) == "2024-03-01" and ingested_day("features/measurements/date=2024-03-01/x") is None
    assert online_table_name("DR.{project}.{table_name}") == "DR.diabetes_risk.patient_measurements"


# --- the online store: Feast writes, the light reader reads ------------------------------------------------------
@pytest.fixture
def dynamo(aws_env):
    with mock_aws():
        yield boto3.client("dynamodb", region_name="us-east-1")


def test_light_reader_returns_what_feast_materialised_into_dynamodb(tmp_path, dynamo):
    cfg = config(tmp_path, online="dynamodb", table_template="T.{project}.{table_name}")
    rows = [
        measurement("a", T0, 100.0),
        measurement("a", T0 + timedelta(days=30), 180.5, insulin=85.0),
        measurement("b", T0, 140.0, bmi=np.nan),
        measurement("ü-ñ 7", T0, 101.0),  # any text id: the key is its UTF-8 bytes
    ]
    write_measurements(pd.DataFrame(rows), cfg.offline_root, "clinic")
    store = apply(cfg)
    materialize(cfg, store=store)
    reader = OnlineFeatures(dynamo, "T.diabetes_risk.patient_measurements")
    expected = store.get_online_features(
        features=[f"patient_measurements:{f}" for f in FEATURES],
        entity_rows=[{"patient_id": p} for p in ("a", "b", "ü-ñ 7")],
    ).to_dict()
    for i, patient in enumerate(("a", "b", "ü-ñ 7")):
        got = reader.get(patient)
        assert got is not None
        assert got.values == {f: expected[f][i] for f in FEATURES}
    a = reader.get("a")
    assert a.values["glucose"] == 180.5 and a.values["insulin"] == 85.0 and a.measured_at == T0 + timedelta(days=30)
    assert reader.get("b").values["bmi"] is None  # missing stays missing
    assert reader.get("nobody") is None


def test_incremental_materialisation_updates_new_measurements_and_keeps_older_patients(tmp_path, dynamo):
    cfg = config(tmp_path, online="dynamodb", table_template="T.{project}.{table_name}")
    write_measurements(
        pd.DataFrame([measurement("old", T0, 100.0), measurement("a", T0, 120.0)]), cfg.offline_root, "one"
    )
    store = apply(cfg)
    materialize(cfg, store=store)
    later = T0 + timedelta(days=40)
    write_measurements(pd.DataFrame([measurement("a", later, 190.0)]), cfg.offline_root, "two")
    materialize(cfg, start=later.replace(hour=0), store=store)
    reader = OnlineFeatures(dynamo, "T.diabetes_risk.patient_measurements")
    assert reader.get("a").values["glucose"] == 190.0 and reader.get("a").measured_at == later
    assert reader.get("old").values["glucose"] == 100.0


def test_entity_key_matches_feasts_serialisation():
    from feast.infra.key_encoding_utils import serialize_entity_key
    from feast.infra.online_stores.helpers import compute_entity_id
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey
    from feast.protos.feast.types.Value_pb2 import Value

    for patient in ("a", "pima-tr2-0001", "ü-ñ 7", "x" * 128):
        key = EntityKey(join_keys=["patient_id"], entity_values=[Value(string_val=patient)])
        assert entity_key(patient) == serialize_entity_key(key, 3)
        assert entity_id(patient) == compute_entity_id(key, 3)


def test_value_decoder_reads_feast_values_and_refuses_unknown_ones():
    from feast.protos.feast.types.Value_pb2 import Value

    for value in (0.0, -1.5, 187.3, 1e300):
        assert decode_value(Value(double_val=value).SerializeToString()) == value
    assert decode_value(Value(float_val=2.5).SerializeToString()) == 2.5
    assert decode_value(Value(int64_val=-3).SerializeToString()) == -3.0
    assert decode_value(b"") is None
    with pytest.raises(UndecodableValue):
        decode_value(Value(string_val="x").SerializeToString())


# --- a scored batch's rows in the same offline folder ---------------------------------------------------------------
def test_batch_rows_and_training_rows_share_one_offline_folder_that_feast_reads(tmp_path):
    from batch_scoring.measurements import MeasurementSink

    cfg = config(tmp_path)
    write_measurements(pd.DataFrame([measurement("p1", T0, 110.0)]), cfg.offline_root, "train")
    sink = MeasurementSink(tmp_path / "batch-out", "batch-1", arrived_at=T0 + timedelta(days=60), date_column="date")
    n = 4
    ids = pa.array(["p1", "p2", "", "p3"])
    dates = pa.array(["2024-01-20", "2024-01-21T08:30:00", "2024-01-22", "2999-01-01"])
    columns = {f: np.full(n, 2.0) for f in FEATURES} | {"glucose": np.array([150.0, 160.0, 170.0, 180.0])}
    columns["insulin"] = np.array([np.nan, 50.0, np.nan, np.nan])
    sink.add(ids, dates, columns)
    summary = sink.summary()
    assert (summary.rows_stored, summary.rows_without_id, summary.rows_bad_date) == (2, 1, 1)
    for day, paths in sink.files.items():
        for path in paths:
            target = tmp_path / "measurements" / f"date={day}" / f"batch-1-{path.stem}.parquet"
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(path.read_bytes())
    store = apply(cfg)
    labels = pd.DataFrame(
        {"patient_id": ["p1", "p2"], "diagnosed_at": [T0 + timedelta(days=5), T0 + timedelta(days=30)], LABEL: [1, 0]}
    )
    joined = point_in_time(store, labels, ["glucose", "insulin"])
    assert joined["glucose"].tolist() == [110.0, 160.0]  # p1's batch row came after its diagnosis
    assert np.isnan(joined["insulin"].iloc[0]) and joined["insulin"].iloc[1] == 50.0


def test_a_rewritten_offline_object_is_read_fresh_in_a_long_lived_process(aws_env, tmp_path, monkeypatch):
    """A warm function read the folder once; then an object is rewritten (new ETag). s3fs's cached listing would
    send the old ETag as If-Match and fail (FileExpired): each read starts from a fresh listing."""
    import socket

    from moto.server import ThreadedMotoServer

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        endpoint = f"http://127.0.0.1:{port}"
        monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
        monkeypatch.setenv("FEAST_S3_ENDPOINT_URL", endpoint)
        s3 = boto3.client("s3", region_name="us-east-1", endpoint_url=endpoint)
        s3.create_bucket(Bucket="data")
        cfg = config(tmp_path, offline_root="s3://data/features/measurements/", s3_endpoint=endpoint)
        labels = pd.DataFrame({"patient_id": ["p1"], "diagnosed_at": [T0 + timedelta(days=1)], LABEL: [1.0]})
        write_measurements(pd.DataFrame([measurement("p1", T0, 110.0)]), cfg.offline_root, "clinic", s3=s3)
        store = apply(cfg)
        assert point_in_time(store, labels, ["glucose"])["glucose"].tolist() == [110.0]
        write_measurements(pd.DataFrame([measurement("p1", T0, 115.0)]), cfg.offline_root, "clinic", s3=s3)
        assert point_in_time(store, labels, ["glucose"])["glucose"].tolist() == [115.0]
    finally:
        server.stop()


def test_labels_sharing_a_patient_and_diagnosis_time_each_get_their_measurement(tmp_path):
    """Feast keeps one row per (patient, time) of the entity frame: several labels at one diagnosis time must all
    come back (a clinic's visits that repeat one diagnosis date)."""
    cfg = config(tmp_path)
    write_measurements(pd.DataFrame([measurement("p1", T0, 110.0), measurement("p2", T0, 90.0)]), cfg.offline_root, "c")
    store = apply(cfg)
    when = T0 + timedelta(days=3)
    labels = pd.DataFrame({"patient_id": ["p1", "p2", "p1"], "diagnosed_at": [when] * 3, LABEL: [1.0, 0.0, 1.0]})
    joined = point_in_time(store, labels, ["glucose"])
    assert joined["glucose"].tolist() == [110.0, 90.0, 110.0] and joined[LABEL].tolist() == [1.0, 0.0, 1.0]


def test_two_rows_for_one_patient_and_time_resolve_to_the_later_written(tmp_path):
    import time

    cfg = config(tmp_path)
    write_measurements(pd.DataFrame([measurement("p1", T0, 110.0)]), cfg.offline_root, "first")
    time.sleep(0.01)
    write_measurements(pd.DataFrame([measurement("p1", T0, 999.0)]), cfg.offline_root, "correction")
    store = apply(cfg)
    labels = pd.DataFrame({"patient_id": ["p1"], "diagnosed_at": [T0 + timedelta(days=1)], LABEL: [1.0]})
    assert point_in_time(store, labels, ["glucose"])["glucose"].tolist() == [999.0]


def test_a_row_dated_within_the_accepted_day_ahead_is_materialised(tmp_path, dynamo):
    cfg = config(tmp_path, online="dynamodb", table_template="T.{project}.{table_name}")
    ahead = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=6)  # a clinic east of UTC, naive local time
    write_measurements(pd.DataFrame([measurement("east", ahead, 133.0)]), cfg.offline_root, "clinic")
    materialize(cfg, start=ahead - timedelta(days=1))
    got = OnlineFeatures(dynamo, "T.diabetes_risk.patient_measurements").get("east")
    assert got is not None and got.values["glucose"] == 133.0


def test_training_dates_must_be_iso_8601_and_not_in_the_future(tmp_path):
    path = tmp_path / "clinic.csv"
    head = "patient_id,measured_at,glucose,blood_pressure,skin_thickness,bmi,diabetes_pedigree,age,pregnancies,diabetes"
    rows = [head, "a,03/01/2024,120,70,30,31,0.5,44,1,0", "b,2099-01-01,120,70,30,31,0.5,44,1,0"]
    path.write_text("\n".join(rows) + "\n")
    table = load_table(str(path))
    messages = {(i.row, i.column): i.message for i in table.issues}
    assert messages[(1, "measured_at")].startswith("not an ISO 8601 date")
    assert messages[(2, "measured_at")].startswith("in the future")


def test_an_item_that_is_not_a_feast_row_is_a_store_error_not_a_crash(dynamo):
    from inference_core.online_features import OnlineStoreError

    dynamo.create_table(
        TableName="t",
        KeySchema=[{"AttributeName": "entity_id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "entity_id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    item = {"entity_id": {"S": entity_id("x")}, "event_ts": {"S": "2024-01-01 00:00:00+00:00"}}
    dynamo.put_item(TableName="t", Item={**item, "values": {"M": {"glucose": {"B": b"\x12\x01x"}}}})
    with pytest.raises(OnlineStoreError, match="not a Feast feature row"):
        OnlineFeatures(dynamo, "t").get("x")
    dynamo.put_item(TableName="t", Item={"entity_id": item["entity_id"], "values": {"M": {}}})
    with pytest.raises(OnlineStoreError, match="not a Feast feature row"):
        OnlineFeatures(dynamo, "t").get("x")


def test_feast_loads_without_typeguard_instrumenting_it_and_typeguard_is_put_back():
    """typeguard re-parses a module per decorated method (2.4 s of Feast's import): Feast's classes load unchecked,
    as under `python -O`, and `typechecked` is typeguard's own again afterwards."""
    code = (
        "import typeguard; checked = typeguard.typechecked;"
        "from training.imports import import_feast; feast = import_feast();"
        "init = feast.FeatureView.__init__.__code__;"
        "print('check_argument_types' in init.co_names, typeguard.typechecked is checked, import_feast() is feast)"
    )
    assert in_a_fresh_python(code) == "False True True"


def test_a_failed_feast_import_still_puts_typeguard_back(tmp_path):
    (tmp_path / "feast").mkdir()
    (tmp_path / "feast" / "__init__.py").write_text("raise RuntimeError('a broken install')\n")
    code = (
        "import typeguard; checked = typeguard.typechecked;"
        "from training.imports import import_feast\n"
        "try:\n    import_feast()\nexcept RuntimeError as e:\n    print(e)\n"
        "print(typeguard.typechecked is checked)"
    )
    assert in_a_fresh_python(code, PYTHONPATH=str(tmp_path)).splitlines() == ["a broken install", "True"]


def test_mlflow_loads_feasts_header_plugin_after_feast_came_in_unchecked():
    """MLflow's first request loads Feast's header-provider plugin, which imports all of Feast: Register, Promote and
    `diabetes-risk models` get it from import_mlflow already loaded the fast way, and the plugin still registers."""
    code = (
        "from training.imports import import_mlflow; import_mlflow();"
        "import mlflow.tracking.request_header.registry as headers, feast;"
        "init = feast.FeatureView.__init__.__code__;"
        "print('check_argument_types' in init.co_names,"
        " 'FeastMLflowHeaderProvider' in {type(p).__name__ for p in headers._request_header_provider_registry})"
    )
    assert in_a_fresh_python(code) == "False True"


def test_apply_loads_feast_unchecked_although_the_definitions_import_it_themselves(tmp_path):
    code = (
        "import sys; from pathlib import Path; from training.features import FeastConfig, apply;"
        f"root = Path({str(tmp_path)!r});"
        "apply(FeastConfig(str(root / 'm'), str(root / 'r.db'), online_path=str(root / 'o.db')));"
        "import feast; print('check_argument_types' in feast.FeatureView.__init__.__code__.co_names)"
    )
    assert in_a_fresh_python(code) == "False"


def test_registers_runs_and_versions_through_a_client_that_loaded_feast_unchecked(tmp_path):
    """Register, Promote and `diabetes-risk models` get their MLflow client from tracking._client: its first request
    loads Feast's header plugin after Feast came in the fast way."""
    code = (
        "from training.settings import TrainingSettings; from training import tracking;"
        f"settings = TrainingSettings(artifacts_bucket='art', MLFLOW_TRACKING_URI='sqlite:///{tmp_path}/m.db');"
        "mlflow, client = tracking._client(settings); client.search_experiments();"
        "import feast; print('check_argument_types' in feast.FeatureView.__init__.__code__.co_names)"
    )
    assert in_a_fresh_python(code) == "False"


def test_our_feature_definitions_pass_feasts_own_type_checks(tmp_path):
    """Feast's typeguard checks are skipped where it is imported the fast way: the definitions are checked here,
    with Feast imported plainly (instrumented)."""
    code = (
        "import feast; from feature_repo.definitions import objects;"
        "assert 'check_argument_types' in feast.FeatureView.__init__.__code__.co_names;"
        f"print(sorted(type(o).__name__ for o in objects({str(tmp_path)!r} + '/m/')))"
    )
    assert in_a_fresh_python(code) == "['Entity', 'FeatureView', 'FileSource']"


def test_training_goes_on_while_a_materialization_holds_the_view(tmp_path, dynamo):
    """A batch's materialization marks the view MATERIALIZING in the shared registry for as long as it runs (and for
    good if its process dies). Feast then refused the training's point-in-time join ("cannot serve features"): a
    training started right after a batch failed in its Features step. The join goes on, and the next materialization
    leaves the view servable again."""
    from feast.feature_view import FeatureViewState

    from training.features import VIEW

    cfg = config(tmp_path, online="dynamodb", online_path="", region="us-east-1")
    valid = pd.DataFrame([measurement("p1", T0, 110.0), measurement("p2", T0, 120.0)])
    valid["diagnosed_at"] = [T0 + timedelta(days=30)] * 2
    valid[LABEL] = [1.0, 0.0]
    write_measurements(valid[["patient_id", "measured_at", *FEATURES]], cfg.offline_root, "train-x")
    store = apply(cfg)
    view = store.get_feature_view(VIEW)
    view.state = FeatureViewState.MATERIALIZING  # as a materialization in another process leaves it
    store.registry.apply_feature_view(view, store.project, commit=True)

    frame, _ = training_frame(cfg, valid, ["glucose"], "train-x")
    assert frame["glucose"].tolist() == [110.0, 120.0]
    materialize(cfg, end=T0 + timedelta(days=1))
    assert apply(cfg).get_feature_view(VIEW).state == FeatureViewState.AVAILABLE_ONLINE


def test_feasts_advice_against_the_flag_on_a_file_registry_is_not_logged(tmp_path, caplog):
    """Feast logs that serve_features_while_materializing "typically has no effect" on a file registry; the test
    above shows it does, so that line is filtered out, and only that line."""
    import logging

    from training.features import open_store

    with caplog.at_level(logging.INFO, logger="feast.repo_config"):
        store = open_store(config(tmp_path))
        logging.getLogger("feast.repo_config").warning("another warning of Feast's")
    assert store.registry.serve_features_while_materializing is True
    assert [r.getMessage() for r in caplog.records if r.name == "feast.repo_config"] == ["another warning of Feast's"]


def test_a_view_left_unservable_stops_training_with_the_repair_named_and_a_materialization_repairs_it(tmp_path, dynamo):
    """A materialization that found the view MATERIALIZING and then failed puts it back to GENERATED, which Feast
    will not read, flag or not: the Features step says so and names the repair, and the repair works."""
    from feast.feature_view import FeatureViewState

    from training.features import VIEW

    cfg = config(tmp_path, online="dynamodb", online_path="", region="us-east-1")
    valid = pd.DataFrame([measurement("p1", T0, 110.0)])
    valid["diagnosed_at"] = [T0 + timedelta(days=30)]
    valid[LABEL] = [1.0]
    write_measurements(valid[["patient_id", "measured_at", *FEATURES]], cfg.offline_root, "train-x")
    store = apply(cfg)
    view = store.get_feature_view(VIEW)
    view.state = FeatureViewState.GENERATED
    store.registry.apply_feature_view(view, store.project, commit=True)

    with pytest.raises(FeatureStoreError, match=r"state 'GENERATED'.*diabetes-risk features materialize"):
        training_frame(cfg, valid, ["glucose"], "train-x")
    materialize(cfg, end=T0 + timedelta(days=1))
    frame, _ = training_frame(cfg, valid, ["glucose"], "train-x")
    assert frame["glucose"].tolist() == [110.0]


def test_another_error_of_feasts_join_comes_through_as_it_is(tmp_path, monkeypatch):
    """Only Feast's "cannot serve features" becomes the store error with the repair named."""
    import feast

    cfg = config(tmp_path)
    valid = pd.DataFrame([measurement("p1", T0, 110.0)])
    valid["diagnosed_at"] = [T0 + timedelta(days=30)]
    valid[LABEL] = [1.0]
    write_measurements(valid[["patient_id", "measured_at", *FEATURES]], cfg.offline_root, "train-x")

    def broken(self, **kwargs):
        raise ValueError("entity_df has no event_timestamp column")

    monkeypatch.setattr(feast.FeatureStore, "get_historical_features", broken)
    with pytest.raises(ValueError, match="no event_timestamp column"):  # FeatureStoreError is no ValueError
        training_frame(cfg, valid, ["glucose"], "train-x")
