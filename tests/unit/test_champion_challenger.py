"""Shadow and canary in the prediction function: who answers, what the response says, what the metrics show,
and that a broken challenger never breaks the champion's answer."""

from __future__ import annotations

import importlib
import json

import numpy as np
import pandas as pd
import pytest
from scipy.stats import binomtest

from inference_core.contracts import Calibration, Rollout
from tests.events.loader import FakeContext, api_event
from tests.unit.predict_fixtures import BUCKET, build_champion, model_ref, publish

CONTEXT = FakeContext("predict", "lambda-req-1")
PATIENT = {
    "pregnancies": 2,
    "glucose": 150,
    "blood_pressure": 62,
    "skin_thickness": 35,
    "bmi": 33.6,
    "diabetes_pedigree": 0.127,
    "age": 47,
}


@pytest.fixture(scope="module")
def models():
    return build_champion("logistic_regression"), build_champion("xgboost")


def _deploy(s3, monkeypatch, models, rollout: Rollout, challenger_sha: str | None = None, flush_s: str = "0"):
    monkeypatch.setenv("DR_ARTIFACTS_BUCKET", BUCKET)
    monkeypatch.setenv("DR_MODEL_REFRESH_S", "0")
    monkeypatch.setenv("DR_SHADOW_FLUSH_S", flush_s)  # 0: the challenger scores after every shadowed request
    s3.create_bucket(Bucket=BUCKET)
    (_, features, onnx_lr, thr_lr, expl), (_, _, onnx_xgb, thr_xgb, _) = models
    challenger = model_ref(s3, onnx_xgb, features, thr_xgb, "2", "xgboost", sha=challenger_sha)
    publish(s3, onnx_lr, features, thr_lr, expl, challenger=challenger, rollout=rollout)
    import predict.app as module

    return importlib.reload(module)


def _patients(n: int) -> list[dict]:
    return [{**PATIENT, "glucose": 80 + (i % 110), "age": 21 + (i // 110) % 60, "bmi": 20 + (i % 7)} for i in range(n)]


def _call(api, body: dict) -> dict:
    response = api.handler(api_event(body=body), CONTEXT)
    assert response["statusCode"] == 200, response["body"]
    return json.loads(response["body"])


def _emf(out: str) -> list[dict]:
    """EMF records, each metric's values summed (Powertools writes a list when a name is added more than once)."""
    records = [json.loads(line) for line in out.splitlines() if line.startswith("{") and "_aws" in line]
    return [{k: sum(v) if isinstance(v, list) else v for k, v in r.items()} for r in records]


def test_canary_share_answers_by_challenger_deterministically(s3, monkeypatch, models):
    api = _deploy(s3, monkeypatch, models, Rollout(mode="canary", share=0.3))
    (lr, features, *_), (xgb, *_) = models
    bodies = _patients(400)
    answers = [_call(api, body) for body in bodies]
    challenger = [a for a in answers if a["variant"] == "challenger"]
    # about 30 %: a two-sided binomial test does not reject p = 0.3
    assert binomtest(len(challenger), len(answers), 0.3).pvalue > 0.001
    for body, answer in zip(bodies, answers, strict=True):
        model, version = (xgb, "2") if answer["variant"] == "challenger" else (lr, "1")
        assert answer["model_version"] == version
        expected = model.predict_proba(pd.DataFrame([body])[features])[0, 1]
        assert answer["predictions"][0]["probability"] == pytest.approx(expected, abs=1e-5)
    # a retry of the same request meets the same model, however it is serialised (key order, spacing, 150 vs 150.0)
    for body, answer in zip(bodies[:40], answers[:40], strict=True):
        assert _call(api, body)["variant"] == answer["variant"]
        reordered = json.dumps({k: float(v) for k, v in reversed(body.items())}, indent=1)
        response = api.handler(api_event(raw_body=reordered), CONTEXT)
        assert json.loads(response["body"])["variant"] == answer["variant"]


def test_shadow_answers_with_champion_and_records_the_comparison(s3, monkeypatch, models, capfd):
    api = _deploy(s3, monkeypatch, models, Rollout(mode="shadow", share=1.0))
    (lr, features, *_), (xgb, _, _, thr_c, _) = models
    capfd.readouterr()
    body = {"patients": _patients(20)}
    answer = _call(api, body)
    assert answer["variant"] == "champion" and answer["model_version"] == "1"
    frame = pd.DataFrame(body["patients"])[features]
    champion_p, challenger_p = lr.predict_proba(frame)[:, 1], xgb.predict_proba(frame)[:, 1]
    np.testing.assert_allclose([p["probability"] for p in answer["predictions"]], champion_p, atol=1e-5)
    (record,) = [r for r in _emf(capfd.readouterr().out) if "ShadowScored" in r]
    assert "variant" not in record and record["ShadowScored"] == 20
    agree = sum(
        (c >= thr_c["high"]) == (p["risk_band"] == "high") and (c < thr_c["low"]) == (p["risk_band"] == "low")
        for c, p in zip(challenger_p, answer["predictions"], strict=True)
    )
    assert record["ShadowBandAgreement"] == agree
    assert record["ShadowAbsProbabilityDiffSum"] == pytest.approx(np.abs(challenger_p - champion_p).sum(), abs=1e-3)
    assert record["ShadowChallengerProbabilitySum"] == pytest.approx(challenger_p.sum(), abs=1e-3)
    assert record["ShadowChampionProbabilitySum"] == pytest.approx(champion_p.sum(), abs=1e-3)
    challenger_buckets = sum(v for k, v in record.items() if k.startswith("ChallengerProbability_"))
    assert challenger_buckets == 20 and record["ChallengerScoringLatency"] > 0 and record["ChampionScoringLatency"] > 0


def test_shadow_batches_the_challenger_by_window(s3, monkeypatch, models, capfd):
    """With a 60 s window and 256 rows, 30 single-patient requests cost the challenger nothing yet; a batch that
    fills the window scores everything buffered in one run."""
    api = _deploy(s3, monkeypatch, models, Rollout(mode="shadow", share=1.0), flush_s="60")
    capfd.readouterr()
    for body in _patients(30):
        assert _call(api, body)["variant"] == "champion"
    assert not [r for r in _emf(capfd.readouterr().out) if "ShadowScored" in r]
    assert api.STORE._challenger is None  # not even loaded yet
    _call(api, {"patients": _patients(230)})
    (record,) = [r for r in _emf(capfd.readouterr().out) if "ShadowScored" in r]
    assert record["ShadowScored"] == 260 and not api.SHADOW.patients


def test_shadow_share_scores_only_that_share(s3, monkeypatch, models, capfd):
    api = _deploy(s3, monkeypatch, models, Rollout(mode="shadow", share=0.25))
    capfd.readouterr()
    for body in _patients(200):
        _call(api, body)
    shadowed = sum(1 for r in _emf(capfd.readouterr().out) if "ShadowScored" in r)
    assert binomtest(shadowed, 200, 0.25).pvalue > 0.001


def test_a_broken_challenger_never_breaks_the_answer(s3, monkeypatch, models, capfd):
    # the challenger's file does not match its sha256: it is refused; the champion answers every request
    api = _deploy(s3, monkeypatch, models, Rollout(mode="canary", share=1.0), challenger_sha="0" * 64)
    capfd.readouterr()
    answers = [_call(api, body) for body in _patients(5)]
    assert {a["variant"] for a in answers} == {"champion"}
    records = _emf(capfd.readouterr().out)
    assert sum(r.get("ChallengerUnavailable", 0) for r in records) == 5


def test_no_rollout_means_no_challenger_work(s3, monkeypatch, models, capfd):
    api = _deploy(s3, monkeypatch, models, Rollout(mode="none"))
    capfd.readouterr()
    answers = [_call(api, body) for body in _patients(30)]
    assert {a["variant"] for a in answers} == {"champion"}
    assert api.STORE._challenger is None  # never even loaded
    out = capfd.readouterr().out
    assert "Shadow" not in out and '"variant"' not in out


def test_model_route_describes_challenger_rollout_and_previous(s3, monkeypatch, models):
    api = _deploy(s3, monkeypatch, models, Rollout(mode="canary", share=0.3))
    response = api.handler(api_event(method="GET", path="/model", body=None), CONTEXT)
    body = json.loads(response["body"])
    assert body["rollout"] == {"mode": "canary", "share": 0.3}
    assert body["challenger"]["model_version"] == "2" and body["challenger"]["family"] == "xgboost"
    assert body["model_version"] == "1" and body["previous_version"] is None


def test_a_new_rollout_reuses_the_loaded_champion(s3, monkeypatch, models):
    api = _deploy(s3, monkeypatch, models, Rollout(mode="none"))
    first = api.STORE.get()
    pointer = json.loads(s3.get_object(Bucket=BUCKET, Key="serving/champion.json")["Body"].read())
    pointer["rollout"] = {"mode": "shadow", "share": 1.0}
    s3.put_object(Bucket=BUCKET, Key="serving/champion.json", Body=json.dumps(pointer).encode())
    second = api.STORE.get()
    assert second.pointer.rollout.mode == "shadow" and second.session is first.session


def test_calibration_in_the_pointer_is_applied():
    from inference_core.scoring import calibrate

    p = np.array([0.1, 0.5, 0.9])
    np.testing.assert_allclose(calibrate(None, p), p)
    scaled = calibrate(Calibration(a=2.0, b=0.0), p)
    assert scaled[0] < 0.1 and scaled[1] == pytest.approx(0.5) and scaled[2] > 0.9


def test_shadow_buffer_window_and_a_new_challenger(models):
    from inference_core.contracts import Patient, Prediction
    from inference_core.shadow import ShadowBuffer

    now = [0.0]
    buffer = ShadowBuffer(max_rows=5, max_age_s=10, clock=lambda: now[0])
    patients = [Patient(**p) for p in _patients(3)]
    served = [Prediction(probability=0.5, risk_band="moderate")] * 3
    buffer.add("sha-a", patients, served)
    assert not buffer.due()
    now[0] = 10.0
    assert buffer.due()  # old enough
    now[0] = 0.0
    buffer.add("sha-a", patients, served)
    assert buffer.due() and len(buffer.patients) == 6  # full enough
    buffer.add("sha-b", patients[:1], served[:1])  # another challenger: the old one's rows are not its to score
    assert len(buffer.patients) == 1 and buffer.challenger_sha == "sha-b"

    class Loaded:  # a challenger whose file is not the one the rows were buffered for
        def __init__(self, sha):
            self.pointer = type("P", (), {"onnx_sha256": sha, "model_version": "9"})()

    summary = buffer.score(Loaded("sha-c"), Loaded("sha-a"))
    assert summary.rows_dropped == 1 and summary.scored == 0 and not buffer.patients


def test_the_pointers_calibration_is_applied_to_probabilities_and_contributions(s3, monkeypatch, models):
    """Platt scaling chosen in training travels in the pointer: the API answers calibrated probabilities, and the
    contributions (scaled by a) still add up, with the calibrated intercept, to the served log-odds."""
    from tests.unit.predict_fixtures import logit

    monkeypatch.setenv("DR_ARTIFACTS_BUCKET", BUCKET)
    monkeypatch.setenv("DR_MODEL_REFRESH_S", "0")
    s3.create_bucket(Bucket=BUCKET)
    (lr, features, onnx_lr, thr, explainer), _ = models
    publish(s3, onnx_lr, features, thr, explainer)
    pointer = json.loads(s3.get_object(Bucket=BUCKET, Key="serving/champion.json")["Body"].read())
    pointer["calibration"] = {"kind": "platt", "a": 1.7, "b": -0.4}
    s3.put_object(Bucket=BUCKET, Key="serving/champion.json", Body=json.dumps(pointer).encode())
    import predict.app as module

    api = importlib.reload(module)
    (prediction,) = _call(api, PATIENT)["predictions"]
    raw = lr.predict_proba(pd.DataFrame([PATIENT])[features])[0, 1]
    expected = 1 / (1 + np.exp(-(1.7 * logit(raw) - 0.4)))
    assert prediction["probability"] == pytest.approx(expected, abs=1e-5) and abs(expected - raw) > 0.01
    served_logit = sum(prediction["contributions"].values()) + 1.7 * explainer["intercept"] - 0.4
    assert served_logit == pytest.approx(logit(prediction["probability"]), abs=1e-3)


def test_a_failed_challenger_is_not_reloaded_on_every_request(s3, monkeypatch, models):
    api = _deploy(s3, monkeypatch, models, Rollout(mode="canary", share=1.0), challenger_sha="0" * 64)
    api.STORE.refresh_s = 3600  # one pointer: only the challenger guard decides whether it is fetched again
    loads = []
    real = api.STORE._load
    monkeypatch.setattr(api.STORE, "_load", lambda ref, etag: loads.append(ref.model_version) or real(ref, etag))
    for body in _patients(5):
        assert _call(api, body)["variant"] == "champion"
    assert loads.count("2") == 1  # tried once, refused by its sha256, not fetched again for each request
