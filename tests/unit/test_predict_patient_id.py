"""POST /predict {"patient_id": ...}: the prediction function reads Feast's DynamoDB online store (moto here; Feast
itself materialises it) and scores the stored measurements, with overrides, 404 for an unknown patient, staleness,
and a 503 when the store cannot be read. The light DynamoDB reader is checked against a moto server on 127.0.0.1."""

from __future__ import annotations

import importlib
import json
import socket
from datetime import UTC, datetime, timedelta

import boto3
import numpy as np
import pandas as pd
import pytest

from inference_core.schema import FEATURES
from tests.events.loader import FakeContext, api_event
from tests.unit.log_checks import patient_values_in
from tests.unit.predict_fixtures import BUCKET, build_champion, publish

TEMPLATE = "T.{project}.{table_name}"
TABLE = "T.diabetes_risk.patient_measurements"
RECENT = datetime.now(UTC).replace(microsecond=0) - timedelta(days=3)
STORED = {
    "p-1": {"pregnancies": 2, "glucose": 187.3, "blood_pressure": 62, "skin_thickness": 35, "insulin": np.nan,
            "bmi": 33.6, "diabetes_pedigree": 0.127, "age": 47, "measured_at": RECENT},
    "p-old": {"pregnancies": 1, "glucose": 99.0, "blood_pressure": 70, "skin_thickness": 20, "insulin": np.nan,
              "bmi": 24.0, "diabetes_pedigree": 0.3, "age": 31, "measured_at": datetime(2020, 5, 1, tzinfo=UTC)},
    "p-nobmi": {"pregnancies": 0, "glucose": 120.0, "blood_pressure": 72, "skin_thickness": 28, "insulin": np.nan,
                "bmi": np.nan, "diabetes_pedigree": 0.4, "age": 39, "measured_at": RECENT},
}  # fmt: skip
CONTEXT = FakeContext("predict", "lambda-req-2")


@pytest.fixture(scope="module")
def champion():
    return build_champion()


def materialise(tmp_path) -> None:
    from training.features import FeastConfig, materialize, write_measurements

    rows = pd.DataFrame([{"patient_id": p, **v} for p, v in STORED.items()])
    cfg = FeastConfig(
        offline_root=str(tmp_path / "measurements"),
        registry_path=str(tmp_path / "registry.db"),
        online="dynamodb",
        table_template=TEMPLATE,
    )
    write_measurements(rows, cfg.offline_root, "clinic")
    materialize(cfg)


@pytest.fixture
def api(s3, monkeypatch, champion, tmp_path):
    monkeypatch.setenv("DR_ARTIFACTS_BUCKET", BUCKET)
    monkeypatch.setenv("DR_ONLINE_TABLE", TABLE)
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "DiabetesRisk")
    s3.create_bucket(Bucket=BUCKET)
    _, features, onnx_bytes, thresholds, explainer = champion
    publish(s3, onnx_bytes, features, thresholds, explainer)
    materialise(tmp_path)
    import predict.app as module

    return importlib.reload(module)


def call(api, body) -> tuple[int, dict]:
    response = api.handler(api_event(body=body), CONTEXT)
    return response["statusCode"], json.loads(response["body"])


def measured(patient: str, **over) -> dict:
    values = {k: v for k, v in STORED[patient].items() if k in FEATURES and not pd.isna(v)}
    return values | over


def test_a_patient_id_scores_the_stored_measurements_like_sending_them(api):
    status, body = call(api, {"patient_id": "p-1"})
    assert status == 200, body
    _, direct = call(api, measured("p-1"))
    assert body["predictions"] == direct["predictions"]
    features = body["features"]
    assert features["patient_id"] == "p-1" and features["measured_at"] == RECENT.isoformat()
    assert features["stale"] is False and 2.9 < features["age_days"] < 3.1 and features["overridden"] == []


def test_measurements_in_the_request_override_the_stored_ones(api):
    status, body = call(api, {"patient_id": "p-1", "glucose": 95.0, "bmi": 22.5})
    assert status == 200 and body["features"]["overridden"] == ["bmi", "glucose"]
    _, direct = call(api, measured("p-1", glucose=95.0, bmi=22.5))
    _, stored = call(api, {"patient_id": "p-1"})
    assert body["predictions"] == direct["predictions"] != stored["predictions"]


def test_an_unknown_patient_is_a_404_naming_the_field(api):
    status, body = call(api, {"patient_id": "nobody"})
    assert status == 404
    assert body["error"].startswith("unknown patient") and body["details"][0]["field"] == "patient_id"


def test_old_features_are_flagged_stale(api, monkeypatch):
    status, body = call(api, {"patient_id": "p-old"})
    assert status == 200 and body["features"]["stale"] is True and body["features"]["max_age_days"] == 365
    monkeypatch.setenv("DR_FEATURE_MAX_AGE_DAYS", "5000")
    fresh = importlib.reload(api)
    assert call(fresh, {"patient_id": "p-old"})[1]["features"]["stale"] is False


def test_a_required_value_neither_stored_nor_sent_is_a_422_and_sending_it_works(api):
    status, body = call(api, {"patient_id": "p-nobmi"})
    assert status == 422 and "send them with the patient_id" in body["error"]
    assert [d["field"] for d in body["details"]] == ["bmi"]
    status, body = call(api, {"patient_id": "p-nobmi", "bmi": 28.0})
    assert status == 200 and body["features"]["overridden"] == ["bmi"]


@pytest.mark.parametrize(
    "body, field",
    [
        ({"patient_id": ""}, "patient_id"),
        ({"patient_id": " p-1"}, "patient_id"),
        ({"patient_id": "x" * 129}, "patient_id"),
        ({"patient_id": 17}, "patient_id"),
        ({"patient_id": "p-1", "glucose": 9000}, "glucose"),
        ({"patient_id": "p-1", "colour": "red"}, "colour"),
    ],
)
def test_bad_patient_id_requests_are_422_per_field(api, body, field):
    status, answer = call(api, body)
    assert status == 422 and field in [d["field"] for d in answer["details"]]


def test_an_unreadable_store_is_a_503_and_an_unconfigured_one_says_so(api, monkeypatch):
    boto3.client("dynamodb", region_name="us-east-1").delete_table(TableName=TABLE)
    status, body = call(api, {"patient_id": "p-1"})
    assert status == 503 and "online feature store is unavailable" in body["error"]
    assert call(api, measured("p-1"))[0] == 200  # the measurement path does not need the store
    monkeypatch.delenv("DR_ONLINE_TABLE")
    bare = importlib.reload(api)
    status, body = call(bare, {"patient_id": "p-1"})
    assert status == 503 and "not configured" in body["error"]


def test_logs_and_metrics_hold_no_patient_id_or_values(api, capfd):
    capfd.readouterr()
    call(api, {"patient_id": "p-1"})
    call(api, {"patient_id": "nobody"})
    out = capfd.readouterr().out
    assert patient_values_in(out, ("p-1", "nobody", 187.3)) == []
    records = [json.loads(line) for line in out.splitlines() if line.startswith("{") and "_aws" in line]
    names = {m["Name"] for r in records for d in r["_aws"]["CloudWatchMetrics"] for m in d["Metrics"]}
    assert {"PatientLookups", "FeatureLookupLatency", "Errors_unknown_patient"} <= names


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_light_reader_reads_the_wire_format_from_a_dynamodb_endpoint(aws_env, tmp_path, monkeypatch):
    """Against moto's server on 127.0.0.1: the signed GetItem over urllib, base64 binary values, errors."""
    from moto.server import ThreadedMotoServer

    from inference_core.online_features import DynamoReader, OnlineFeatures, OnlineStoreError
    from inference_core.sigv4 import Credentials

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        endpoint = f"http://127.0.0.1:{port}"
        monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
        materialise(tmp_path)  # Feast writes through boto3 to the same server
        reader = OnlineFeatures(DynamoReader(Credentials("testing", "testing"), "us-east-1", endpoint), TABLE)
        got = reader.get("p-1")
        assert got.values["glucose"] == 187.3 and got.values["insulin"] is None and got.measured_at == RECENT
        assert reader.get("nobody") is None
        with pytest.raises(OnlineStoreError, match="HTTP 400 ResourceNotFoundException"):
            OnlineFeatures(reader.client, "no-such-table").get("p-1")
    finally:
        server.stop()
    with pytest.raises(OnlineStoreError, match="DynamoDB GetItem"):
        reader.get("p-1")  # the endpoint is gone: a clear error, not a hang


def test_a_measurement_request_never_loads_the_online_reader():
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    code = (
        "import sys, os, json; sys.path.insert(0, 'functions');"
        "os.environ.update(DR_ARTIFACTS_BUCKET='bucket', DR_ONLINE_TABLE='table', POWERTOOLS_TRACE_DISABLED='true');"
        "import predict.app as app;"
        "from tests.events.loader import api_event, FakeContext;"
        "app.handler(api_event(body={'glucose': 'x'}), FakeContext('p', 'r'));"
        "print(sorted({'mmh3', 'inference_core.online_features', 'feast'} & set(sys.modules)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True,
        env={"PATH": "/usr/bin", "AWS_DEFAULT_REGION": "us-east-1"},
    )  # fmt: skip
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_an_unreadable_stored_item_is_a_503_not_a_500(api):
    from inference_core.online_features import entity_id

    client = boto3.client("dynamodb", region_name="us-east-1")
    client.put_item(
        TableName=TABLE,
        Item={"entity_id": {"S": entity_id("p-1")}, "event_ts": {"S": "x"}, "values": {"M": {}}},
    )
    status, body = call(api, {"patient_id": "p-1"})
    assert status == 503 and "online feature store is unavailable" in body["error"]


def test_the_light_reader_takes_credentials_and_its_own_endpoint_from_the_environment():
    from inference_core.online_features import DynamoReader

    env = {"AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s", "AWS_REGION": "eu-west-1"}
    assert DynamoReader.from_env(env).endpoint == "https://dynamodb.eu-west-1.amazonaws.com/"
    local = DynamoReader.from_env({**env, "AWS_ENDPOINT_URL": "http://a:1", "AWS_ENDPOINT_URL_DYNAMODB": "http://b:2"})
    assert local.endpoint == "http://b:2/" and local.credentials.access_key == "k"
    assert DynamoReader.from_env({"AWS_REGION": "eu-west-1"}) is None  # no credentials: boto3 instead
