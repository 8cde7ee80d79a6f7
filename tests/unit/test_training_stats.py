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
