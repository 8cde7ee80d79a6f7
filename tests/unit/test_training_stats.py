"""Bootstrap intervals, the paired gate test and calibration: each checked against an independent computation
or a case whose answer is known."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from training import stats


@pytest.fixture
def scored():
    rng = np.random.default_rng(7)
    y = rng.integers(0, 2, 400)
    score = np.round(rng.random(400) + 0.6 * y, 2)  # rounded: many ties
    return y, score


def test_weighted_auc_matches_scikit_learn_with_ties_and_weights(scored):
    y, score = scored
    weights = stats.bootstrap_weights(len(y), 20, seed=3)
    ours = stats.weighted_auc(y, score, weights)
    theirs = [roc_auc_score(y, score, sample_weight=w) for w in weights]
    np.testing.assert_allclose(ours, theirs, atol=1e-12)
    assert stats.weighted_auc(y, score, np.ones((1, len(y))))[0] == pytest.approx(roc_auc_score(y, score))


def test_stratified_resamples_keep_each_class_size(scored):
    y, _ = scored
    w = stats.bootstrap_weights(len(y), 50, seed=1, y=y)
    assert np.all(w[:, y == 1].sum(axis=1) == (y == 1).sum())
    assert np.all(w[:, y == 0].sum(axis=1) == (y == 0).sum())


def test_bootstrap_intervals_contain_the_estimate_and_narrow_with_more_rows():
    rng = np.random.default_rng(0)

    def width(n):
        y = rng.integers(0, 2, n)
        p = np.clip(0.3 + 0.4 * y + rng.normal(0, 0.25, n), 0.01, 0.99)
        ci = stats.bootstrap_cis(y, p, resamples=500, seed=1)
        for interval in ci.values():
            assert interval.low <= interval.estimate <= interval.high
        assert ci["brier"].estimate == pytest.approx(np.mean((p - y) ** 2))
        return ci["roc_auc"].high - ci["roc_auc"].low

    assert width(2000) < width(100) / 2


def test_paired_test_refuses_a_worse_model_and_passes_an_equal_one(scored):
    y, score = scored
    rng = np.random.default_rng(2)
    worse = score + rng.normal(0, 0.8, len(y))  # much noisier: clearly worse
    result = stats.paired_bootstrap(y, worse, score, resamples=1000)
    assert result.delta < 0 and result.high < 0 and result.p_worse < 0.01
    same = stats.paired_bootstrap(y, score, score, resamples=1000)
    assert same.delta == 0 and same.p_worse == 1.0
    better = stats.paired_bootstrap(y, score, worse, resamples=1000)
    assert better.delta > 0 and better.p_worse > 0.9


def test_paired_test_is_paired(scored):
    """Two models sharing their errors differ by a tiny, consistent margin: a paired test sees it as
    significant, where two independent intervals would overlap completely."""
    y, score = scored
    tweak = score + np.where(y == 1, 0.0, 0.02)  # a little worse on every negative: lower AUC, same hard cases
    result = stats.paired_bootstrap(y, tweak, score, resamples=1000)
    single = stats.bootstrap_cis(y, score, resamples=1000)["roc_auc"]
    assert result.delta < 0
    assert result.high - result.low < (single.high - single.low) / 3


def test_paired_test_refuses_different_rows(scored):
    y, score = scored
    with pytest.raises(ValueError, match="same holdout rows"):
        stats.paired_bootstrap(y, score[:-1], score)


def test_calibration_is_applied_only_where_it_helps():
    rng = np.random.default_rng(4)
    y = rng.integers(0, 2, 600)
    true = np.clip(0.2 + 0.6 * y + rng.normal(0, 0.15, 600), 0.02, 0.98)
    squashed = 0.4 + 0.2 * true  # right ranking, probabilities far too timid
    check = stats.check_calibration(y, squashed)
    assert check.applied and check.calibration.a > 0
    assert check.brier_calibrated < check.brier_raw and check.ece_calibrated < check.ece_raw
    fixed = stats.apply_calibration(check.calibration, squashed)
    assert np.mean((fixed - y) ** 2) < np.mean((squashed - y) ** 2)
    assert roc_auc_score(y, fixed) == pytest.approx(roc_auc_score(y, squashed))  # monotone: ranking kept
    # an already calibrated model: outcomes drawn from its own probabilities; scaling cannot help enough
    p = rng.uniform(0.05, 0.95, 3000)
    y2 = (rng.random(3000) < p).astype(int)
    assert not stats.check_calibration(y2, p).applied


def test_a_scaling_that_would_reorder_patients_is_never_applied():
    """A model that ranks backwards gets a negative Platt slope: reported, not applied, and no crash."""
    rng = np.random.default_rng(5)
    y = rng.integers(0, 2, 400)
    backwards = np.clip(0.7 - 0.4 * y + rng.normal(0, 0.1, 400), 0.01, 0.99)
    check = stats.check_calibration(y, backwards)
    assert not check.applied and check.calibration is None
    assert stats._fit_platt(backwards, y)[0] < 0  # the guard is what refused it: the fitted slope is negative
    assert check.brier_calibrated == check.brier_raw  # in its own cross-validation too, each fold's scaling was refused


def test_calibration_cv_keeps_a_patients_repeats_in_one_fold():
    """With repeated CV each patient has several predictions; grouping by patient keeps the scaling's own
    cross-validation honest (with groups, no patient is on both sides of a split)."""
    from sklearn.model_selection import StratifiedGroupKFold

    rng = np.random.default_rng(6)
    y = np.tile(rng.integers(0, 2, 100), 3)
    groups = np.tile(np.arange(100), 3)
    p = np.clip(0.3 + 0.4 * y + rng.normal(0, 0.2, 300), 0.01, 0.99)
    for train, test in StratifiedGroupKFold(5, shuffle=True, random_state=42).split(p.reshape(-1, 1), y, groups):
        assert not set(groups[train]) & set(groups[test])
    assert stats.check_calibration(y, p, groups=groups).brier_raw == pytest.approx(np.mean((p - y) ** 2))


def test_the_gate_scores_the_champion_as_serving_does(s3):
    """The champion's ONNX file and calibration, on the same holdout rows; a champion measured on features the
    holdout lacks cannot be compared (None), and the gate says so instead of guessing."""
    import hashlib

    import pandas as pd

    from inference_core.contracts import ModelRef
    from tests.unit.predict_fixtures import build_champion
    from training.registry import GateSettings
    from training.tracking import onnx_probabilities, paired_with_champion

    pipeline, features, onnx_bytes, thresholds, _ = build_champion()
    rng = np.random.default_rng(1)
    holdout = pd.DataFrame({f: rng.uniform(20, 120, 80) for f in features})
    holdout["diabetes"] = rng.integers(0, 2, 80)
    raw = pipeline.predict_proba(holdout[features])[:, 1]
    np.testing.assert_allclose(onnx_probabilities(onnx_bytes, None, holdout[features]), raw, atol=1e-5)
    scaled = onnx_probabilities(onnx_bytes, {"a": 2.0, "b": 0.5}, holdout[features])
    q = np.clip(raw, 1e-6, 1 - 1e-6)  # as serving clips before the log-odds
    np.testing.assert_allclose(scaled, 1 / (1 + np.exp(-(2.0 * np.log(q / (1 - q)) + 0.5))), atol=1e-4)

    s3.create_bucket(Bucket="artifacts")
    s3.put_object(Bucket="artifacts", Key="models/v1/model.onnx", Body=onnx_bytes)
    champion = ModelRef(
        model_version="1",
        family="logistic_regression",
        onnx_key="models/v1/model.onnx",
        onnx_sha256=hashlib.sha256(onnx_bytes).hexdigest(),
        profile_key="p",
        model_card_key="c",
        features=features,
        thresholds=thresholds,
        metrics={"roc_auc": 0.87},
        mlflow_run_id="r",
        training_data_uri="u",
        training_data_sha256="h",
        trained_at="t",
        promoted_at="t",
    )
    gate = GateSettings(resamples=300)
    served = onnx_probabilities(onnx_bytes, None, holdout[features])  # the candidate as serving would score it
    same = paired_with_champion(s3, "artifacts", champion, holdout, "diabetes", served, gate)
    assert same.delta == 0.0 and same.p_worse == 1.0 and same.rows == 80
    other = champion.model_copy(update={"features": [*features, "waist_circumference"]})
    assert paired_with_champion(s3, "artifacts", other, holdout, "diabetes", served, gate) is None
