"""`diabetes-risk features get/materialize`: what the online store holds for a patient (moto DynamoDB, written by
Feast), an unknown patient, a store that cannot be read, and refused input, each with a clear message."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import boto3
import pandas as pd
import pytest
from moto import mock_aws
from typer.testing import CliRunner

from diabetes_risk.cli import app
from diabetes_risk.cli import features as features_cli
from inference_core.contracts import EXAMPLE_PATIENT

TABLE = "T.diabetes_risk.patient_measurements"


@pytest.fixture
def online(aws_env, tmp_path, monkeypatch):
    from training.features import FeastConfig, materialize, write_measurements

    with mock_aws():
        when = datetime.now(UTC).replace(microsecond=0) - timedelta(days=2)
        rows = pd.DataFrame([{"patient_id": "c-1", "measured_at": when, **EXAMPLE_PATIENT, "insulin": float("nan")}])
        config = FeastConfig(
            offline_root=str(tmp_path / "m"),
            registry_path=str(tmp_path / "r.db"),
            online="dynamodb",
            table_template="T.{project}.{table_name}",
        )
        write_measurements(rows, config.offline_root, "clinic")
        materialize(config)
        client = boto3.client("dynamodb", region_name="us-east-1")
        monkeypatch.setattr(features_cli, "_outputs", lambda: (None, {"OnlineFeaturesTable": TABLE}))
        monkeypatch.setattr("localcloud.smoke.clients", lambda cloud, *names: [client])
        yield client, when


def test_get_prints_the_stored_features_and_their_age(online):
    _, when = online
    result = CliRunner().invoke(app, ["features", "get", "c-1", "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert doc["measured_at"] == when.isoformat() and doc["stale"] is False and 1.9 < doc["age_days"] < 2.1
    assert doc["features"]["glucose"] == EXAMPLE_PATIENT["glucose"] and doc["features"]["insulin"] is None
    stale = CliRunner().invoke(app, ["features", "get", "c-1", "--max-age-days", "1"])
    assert stale.exit_code == 0 and "stale" in stale.output and "glucose\t138" in stale.output


def test_an_unknown_patient_and_an_unreadable_store_exit_1_saying_which(online):
    client, _ = online
    result = CliRunner().invoke(app, ["features", "get", "nobody", "--wait", "1"])
    assert result.exit_code == 1 and "unknown patient 'nobody'" in result.output
    client.delete_table(TableName=TABLE)
    result = CliRunner().invoke(app, ["features", "get", "c-1"])
    assert result.exit_code == 1 and "the online feature store cannot be read" in result.output


def test_bad_input_is_refused_before_anything_is_touched(monkeypatch):
    monkeypatch.setattr(features_cli, "_outputs", lambda: pytest.fail("must not reach the cloud"))
    result = CliRunner().invoke(app, ["features", "materialize", "--since", "last week"])
    assert result.exit_code == 2 and "bad --since 'last week'" in result.output
    assert CliRunner().invoke(app, ["features", "get", "x", "--wait", "-1"]).exit_code == 2
