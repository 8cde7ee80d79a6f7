"""The promotion gate, the serving pointer and the champion/challenger decisions, with an in-process MLflow
(SQLite) and moto S3."""

from __future__ import annotations

import json

import pytest

from inference_core.contracts import ModelRef, Rollout, ServingPointer
from training.registry import (
    MODEL_NAME,
    POINTER_KEY,
    DecisionError,
    GateSettings,
    PointerChanged,
    alias_version,
    apply_decision,
    as_challenger,
    decide,
    promote,
    promote_version,
    published_ref,
    read_pointer,
    register,
    rollback,
    set_rollout,
    write_pointer,
)
from training.stats import PairedComparison

GATE = GateSettings(min_auc=0.80, alpha=0.05)
FIELDS = {
    "family": "xgboost",
    "features": ["glucose"],
    "thresholds": {"decision": 0.3, "low": 0.1, "high": 0.6},
    "metrics": {"roc_auc": 0.85},
    "mlflow_run_id": "r",
    "training_data_uri": "u",
    "training_data_sha256": "h",
    "trained_at": "t",
}


def _ref(version: str, auc: float = 0.85) -> ModelRef:
    return ModelRef(
        model_version=version,
        onnx_key=f"models/v{version}/model.onnx",
        onnx_sha256="0" * 64,
        profile_key="p",
        model_card_key="c",
        promoted_at="t",
        **{**FIELDS, "metrics": {"roc_auc": auc}},
    )


def _comparison(delta: float, p_worse: float) -> PairedComparison:
    return PairedComparison(
        auc_candidate=0.85 + delta,
        auc_champion=0.85,
        delta=delta,
        low=delta - 0.015,
        high=delta + 0.015,
        p_worse=p_worse,
        resamples=2000,
        rows=332,
    )


def test_gate_first_model_above_minimum_is_promoted():
    d = decide("1", 0.85, None, None, GATE)
    assert d.promoted and "no previous champion" in d.reason


def test_gate_below_minimum_is_rejected_with_reason():
    d = decide("2", 0.79, None, None, GATE)
    assert not d.promoted and "0.7900 is below the minimum 0.80" in d.reason


def test_gate_uses_the_paired_test_not_a_fixed_margin():
    champion = _ref("2")
    # 0.03 lower but within the noise: a challenger passes (a fixed 0.01 margin would have refused it) ...
    d = decide("3", 0.82, champion, _comparison(-0.03, p_worse=0.20), GATE, "shadow")
    assert d.promoted and "not worse at alpha = 0.05" in d.reason and "v2" in d.reason and "90% CI" in d.reason
    # ... but it may not replace the champion directly: not shown non-inferior within 0.02
    d = decide("3", 0.82, champion, _comparison(-0.03, p_worse=0.20), GATE, "immediate")
    assert not d.promoted and d.reason.startswith("not shown non-inferior within 0.02")
    # a tie whose interval stays above -0.02 replaces it directly
    assert decide("3", 0.85, champion, _comparison(0.0, p_worse=0.5), GATE, "immediate").promoted
    # only 0.005 lower but consistently so on the same rows: refused in every mode
    for promotion in ("immediate", "shadow", "canary"):
        d = decide("3", 0.845, champion, _comparison(-0.005, p_worse=0.01), GATE, promotion)
        assert not d.promoted and d.reason.startswith("significantly worse") and "p = 0.010" in d.reason
    assert d.comparison["delta"] == -0.005 and d.champion_version == "2"


def test_gate_without_a_comparable_champion_says_so():
    d = decide("3", 0.85, _ref("2"), None, GATE)
    assert d.promoted and "no paired comparison" in d.reason


@pytest.fixture
def mlflow_client(tmp_path, monkeypatch):
    import mlflow
    from mlflow import MlflowClient

    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment("registry-test")  # not an experiment id cached from another test's database
    return MlflowClient(uri)


def _version(client, auc: float) -> str:
    import mlflow

    with mlflow.start_run() as run:
        mlflow.log_text("onnx", "model/model.onnx")
    return register(client, run.info.run_id, f"{run.info.artifact_uri}/model", tags={"holdout_roc_auc": str(auc)})


def test_promotion_publishes_files_then_pointer_and_rejection_changes_nothing(mlflow_client, s3):
    s3.create_bucket(Bucket="artifacts")
    fields = FIELDS
    v1 = _version(mlflow_client, 0.85)
    assert alias_version(mlflow_client, "candidate") == v1
    pointer = promote(
        mlflow_client,
        s3,
        "artifacts",
        decide(v1, 0.85, None, None, GATE),
        onnx_bytes=b"model-bytes",
        profile={"features": {}},
        model_card="# card",
        fields=fields,
    )
    assert pointer is not None and pointer.model_version == v1
    stored = json.loads(s3.get_object(Bucket="artifacts", Key=POINTER_KEY)["Body"].read())
    assert stored["onnx_key"] == f"models/v{v1}/model.onnx"
    assert s3.get_object(Bucket="artifacts", Key=stored["onnx_key"])["Body"].read() == b"model-bytes"
    assert alias_version(mlflow_client, "champion") == v1

    v2 = _version(mlflow_client, 0.82)
    decision = decide(v2, 0.82, pointer.champion_ref(), _comparison(-0.03, 0.001), GATE)
    assert (
        promote(mlflow_client, s3, "artifacts", decision, onnx_bytes=b"worse", profile={}, model_card="", fields=fields)
        is None
    )
    assert alias_version(mlflow_client, "champion") == v1  # champion untouched
    assert json.loads(s3.get_object(Bucket="artifacts", Key=POINTER_KEY)["Body"].read())["model_version"] == v1
    tags = mlflow_client.get_model_version(MODEL_NAME, v2).tags
    assert tags["gate_decision"] == "rejected" and "significantly worse" in tags["gate_reason"]


def _publish(client, s3, auc: float, promotion: str = "immediate", rollout: Rollout | None = None) -> str:
    version = _version(client, auc)
    promote(
        client,
        s3,
        "artifacts",
        decide(version, auc, None, None, GATE),
        promotion=promotion,
        rollout=rollout,
        onnx_bytes=f"model-{version}".encode(),
        profile={},
        model_card="",
        fields={**FIELDS, "metrics": {"roc_auc": auc}},
    )
    return version


def _pointer(s3) -> ServingPointer:
    return read_pointer(s3, "artifacts")[0]


def test_challenger_promote_and_rollback_keep_pointer_and_aliases_consistent(mlflow_client, s3):
    s3.create_bucket(Bucket="artifacts")
    v1 = _publish(mlflow_client, s3, 0.85)
    v2 = _publish(mlflow_client, s3, 0.86, "shadow", Rollout(mode="shadow", share=1.0))
    p = _pointer(s3)
    assert (p.model_version, p.challenger.model_version, p.rollout.mode) == (v1, v2, "shadow")
    assert alias_version(mlflow_client, "champion") == v1 and alias_version(mlflow_client, "challenger") == v2
    assert mlflow_client.get_model_version(MODEL_NAME, v2).tags["decision"] == "challenger"
    assert published_ref(s3, "artifacts", v2).onnx_sha256 == p.challenger.onnx_sha256

    apply_decision(
        mlflow_client,
        s3,
        "artifacts",
        lambda b: set_rollout(b, "canary", 0.3),
        decision="rollout",
        reason="canary",
        by="tester",
    )
    assert _pointer(s3).rollout == Rollout(mode="canary", share=0.3)

    apply_decision(
        mlflow_client,
        s3,
        "artifacts",
        lambda b: promote_version(b, v2, lambda v: None),
        decision="promote",
        reason="won the canary",
        by="tester",
    )
    p = _pointer(s3)
    assert (p.model_version, p.previous.model_version, p.challenger, p.rollout.mode) == (v2, v1, None, "none")
    assert p.onnx_key == f"models/v{v2}/model.onnx"
    assert [alias_version(mlflow_client, a) for a in ("champion", "challenger", "previous")] == [v2, None, v1]
    tags = mlflow_client.get_model_version(MODEL_NAME, v2).tags
    assert (tags["decision"], tags["decided_by"], tags["decision_reason"]) == ("promote", "tester", "won the canary")

    apply_decision(mlflow_client, s3, "artifacts", rollback, decision="rollback", reason="alarm", by="tester")
    p = _pointer(s3)
    assert (p.model_version, p.previous.model_version) == (v1, v2)
    assert [alias_version(mlflow_client, a) for a in ("champion", "challenger", "previous")] == [v1, None, v2]
    assert mlflow_client.get_model_version(MODEL_NAME, v1).tags["decision"] == "rollback"


def test_promote_any_published_version_by_its_serving_file(mlflow_client, s3):
    s3.create_bucket(Bucket="artifacts")
    v1 = _publish(mlflow_client, s3, 0.85)
    v2 = _publish(mlflow_client, s3, 0.86)
    apply_decision(
        mlflow_client,
        s3,
        "artifacts",
        lambda b: promote_version(b, v1, lambda v: published_ref(s3, "artifacts", v)),
        decision="promote",
        reason="back to v1",
    )
    assert (_pointer(s3).model_version, _pointer(s3).previous.model_version) == (v1, v2)


def test_decisions_that_cannot_apply_say_why():
    p = ServingPointer(model_name=MODEL_NAME, **_ref("1").model_dump())
    with pytest.raises(DecisionError, match="no previous champion"):
        rollback(p)
    with pytest.raises(DecisionError, match="already the champion"):
        promote_version(p, "1", lambda v: None)
    with pytest.raises(DecisionError, match=r"v7 was never published to serving \(there is no challenger\)"):
        promote_version(p, "7", lambda v: None)
    with pytest.raises(DecisionError, match="canary needs a challenger"):
        set_rollout(p, "canary", 0.3)
    with pytest.raises(DecisionError, match="nothing is serving yet"):
        promote_version(None, "1", lambda v: None)
    with pytest.raises(DecisionError, match="v1 is already the champion"):
        as_challenger(p, _ref("1"), Rollout(mode="shadow", share=1.0))
    with pytest.raises(ValueError, match="greater than 0"):  # a scaling that would reorder patients: refused
        ServingPointer(model_name=MODEL_NAME, **{**_ref("1").model_dump(), "calibration": {"a": -1.0, "b": 0.0}})


def test_a_retried_promotion_changes_nothing(mlflow_client, s3):
    """The Promote step is retried after a timeout: if its first attempt already wrote the pointer, the retry must
    not make the champion its own `previous` (which would lose the real one and turn rollback into a no-op)."""
    s3.create_bucket(Bucket="artifacts")
    v1 = _publish(mlflow_client, s3, 0.85)
    version = _version(mlflow_client, 0.86)
    args = dict(onnx_bytes=b"model-v2", profile={}, model_card="", fields={**FIELDS, "metrics": {"roc_auc": 0.86}})
    promote(mlflow_client, s3, "artifacts", decide(version, 0.86, None, None, GATE), **args)
    _, etag = read_pointer(s3, "artifacts")
    promote(mlflow_client, s3, "artifacts", decide(version, 0.86, None, None, GATE), **args)  # the retry
    again, etag_again = read_pointer(s3, "artifacts")
    assert (again.model_version, again.previous.model_version) == (version, v1) and etag_again == etag
    # the same for a challenger published twice
    shadow = Rollout(mode="shadow", share=1.0)
    v3 = _version(mlflow_client, 0.87)
    args3 = {**args, "onnx_bytes": b"model-v3"}
    promote(
        mlflow_client, s3, "artifacts", decide(v3, 0.87, None, None, GATE), promotion="shadow", rollout=shadow, **args3
    )
    _, etag = read_pointer(s3, "artifacts")
    promote(
        mlflow_client, s3, "artifacts", decide(v3, 0.87, None, None, GATE), promotion="shadow", rollout=shadow, **args3
    )
    assert read_pointer(s3, "artifacts")[1] == etag


def test_the_gate_writes_on_the_pointer_it_compared_with(mlflow_client, s3):
    """A `models promote` between the gate's read and its write: the gate's decision is refused, not applied to a
    champion it never compared with."""
    s3.create_bucket(Bucket="artifacts")
    _publish(mlflow_client, s3, 0.85)
    seen = read_pointer(s3, "artifacts")
    _publish(mlflow_client, s3, 0.86)  # someone else's decision lands meanwhile
    version = _version(mlflow_client, 0.87)
    with pytest.raises(PointerChanged):
        promote(
            mlflow_client,
            s3,
            "artifacts",
            decide(version, 0.87, None, None, GATE),
            read=seen,
            onnx_bytes=b"m",
            profile={},
            model_card="",
            fields=FIELDS,
        )


def test_an_unreachable_mlflow_is_not_an_unset_alias(monkeypatch):
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    with pytest.raises(MlflowException):
        alias_version(MlflowClient("http://127.0.0.1:9"), "champion")  # nothing listens on the discard port


def test_a_concurrent_decision_is_refused_not_overwritten(s3):
    s3.create_bucket(Bucket="artifacts")
    first = ServingPointer(model_name=MODEL_NAME, **_ref("1").model_dump())
    write_pointer(s3, "artifacts", first, None)
    with pytest.raises(PointerChanged):  # "no pointer yet" no longer holds
        write_pointer(s3, "artifacts", first, None)
    _, etag = read_pointer(s3, "artifacts")
    write_pointer(s3, "artifacts", first.model_copy(update={"promoted_at": "later"}), etag)  # someone else decides
    with pytest.raises(PointerChanged, match="run the command again"):
        write_pointer(
            s3, "artifacts", first.model_copy(update={"model_version": "9"}), etag
        )  # our decision was made on the old pointer
    assert json.loads(s3.get_object(Bucket="artifacts", Key=POINTER_KEY)["Body"].read())["model_version"] == "1"
