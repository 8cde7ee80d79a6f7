"""Model families, selection, thresholds and metrics on small real data."""

from __future__ import annotations

import numpy as np
import pytest

from inference_core.schema import LABEL
from training.evaluate import Thresholds, choose_thresholds, holdout_metrics
from training.export import ExportError, export_with_parity
from training.models import FAMILIES, FamilyResult, build_pipeline, select, train_family
from training.validation import validate


@pytest.fixture(scope="module")
def small(pima):
    train, holdout = pima
    valid, report = validate(train.frame.head(150), settings=None)
    hv, _ = validate(holdout.frame.head(120))
    features = report.features_used
    return valid[features], valid[LABEL].to_numpy().astype(int), hv[features], hv[LABEL].to_numpy().astype(int)


@pytest.mark.parametrize("family", FAMILIES)
def test_each_family_searches_and_exports_with_parity(small, family):
    X, y, Xh, yh = small
    result = train_family(family, X, y, folds=3)
    assert 0.6 < result.cv_auc_mean <= 1.0
    labels, oof, rows = result.oof(y)
    assert oof.shape == (3 * len(y),) and np.array_equal(np.sort(rows), np.repeat(np.arange(len(y)), 3))
    assert np.array_equal(labels, y[rows])
    assert set(result.best_params) <= {k.removeprefix("model__") for k in _grid_keys(family)}
    proba = result.pipeline.predict_proba(Xh)[:, 1]
    assert holdout_metrics(yh, proba, 0.5)["roc_auc"] > 0.7
    onnx_bytes, parity = export_with_parity(result.pipeline, Xh)
    assert parity["max_abs_diff"] <= 1e-4 and parity["rows"] == len(Xh)
    assert onnx_bytes[:2] != b"" and parity["features"] == list(X.columns)


def _grid_keys(family):
    from training.models import GRIDS, HALVING

    return [*GRIDS[family], *([HALVING[family][0]] if family in HALVING else [])]


def test_successive_halving_grows_the_forest_to_its_full_size_for_the_chosen_configuration(small):
    from training.models import HALVING

    X, y, _, _ = small
    result = train_family("random_forest", X, y, folds=3, repeats=1)
    assert result.best_params["n_estimators"] == HALVING["random_forest"][2]
    assert result.pipeline.named_steps["model"].n_estimators == HALVING["random_forest"][2]


def test_missing_values_are_imputed_inside_the_pipeline(small):
    X, y, Xh, _ = small
    result = train_family("logistic_regression", X, y, folds=3)
    holes = Xh.copy()
    holes.iloc[:, 1:4] = np.nan
    assert np.isfinite(result.pipeline.predict_proba(holes)[:, 1]).all()


def test_export_refuses_a_model_that_does_not_match(small, monkeypatch):
    X, y, Xh, _ = small
    result = train_family("logistic_regression", X, y, folds=3)
    import training.export as export

    monkeypatch.setattr(export, "onnx_proba", lambda model, data: result.pipeline.predict_proba(Xh)[:, 1] + 0.01)
    with pytest.raises(ExportError, match=r"differs from scikit-learn by up to 1\.00e-02"):
        export.export_with_parity(result.pipeline, Xh)


def test_unknown_family_is_refused():
    with pytest.raises(ValueError, match="unknown model family 'svm'"):
        build_pipeline("svm")


def _result(family: str, auc: float, se: float = 0.01) -> FamilyResult:
    return FamilyResult(family, build_pipeline(family), {}, auc, 0.02, np.zeros(1), cv_auc_se=se)


def test_selection_is_the_one_standard_error_rule():
    # the simpler family within one SE of the best wins; outside it, the best
    assert select([_result("logistic_regression", 0.80), _result("xgboost", 0.83)]).family == "xgboost"
    assert select([_result("logistic_regression", 0.821), _result("xgboost", 0.83)]).family == "logistic_regression"
    # the SE is the best family's: a noisier best makes a wider band
    assert select([_result("logistic_regression", 0.80), _result("xgboost", 0.83, se=0.04)]).family == (
        "logistic_regression"
    )
    assert select([_result("random_forest", 0.815), _result("xgboost", 0.83, se=0.02)]).family == "random_forest"


def test_repeated_cv_scores_every_row_once_per_repeat(small):
    from training.models import repeated_cv

    X, y, _, _ = small
    scores, oof, rows = repeated_cv(build_pipeline("logistic_regression"), X, y, folds=3, repeats=2, seed=1)
    assert scores.shape == (6,) and np.all((scores > 0.5) & (scores <= 1))
    assert oof.shape == (2 * len(y),) and np.all((oof > 0) & (oof < 1))
    assert np.array_equal(np.bincount(rows, minlength=len(y)), np.full(len(y), 2))  # each row once per repeat
    # the two repeats split differently: the same row gets two different out-of-fold predictions
    first, second = np.empty(len(y)), np.empty(len(y))
    first[rows[: len(y)]], second[rows[len(y) :]] = oof[: len(y)], oof[len(y) :]
    assert not np.allclose(first, second)
    result = train_family("logistic_regression", X, y, folds=3, repeats=2)
    assert len(result.cv_scores) == 6
    assert result.cv_auc_se == pytest.approx(np.std(result.cv_scores, ddof=1) / np.sqrt(3))


def test_thresholds_are_ordered_and_meet_their_targets(small):
    X, y, _, _ = small
    y, oof, _ = train_family("logistic_regression", X, y, folds=3).oof(y)
    t = choose_thresholds(y, oof)
    assert 0 < t.low <= t.decision <= t.high < 1
    assert (oof[y == 1] >= t.low).mean() >= 0.90  # sensitivity at "low"
    assert (oof[y == 0] < t.high).mean() >= 0.90  # specificity at "high"
    assert Thresholds(decision=0.4, low=0.2, high=0.6).band(0.1) == "low"
    assert Thresholds(decision=0.4, low=0.2, high=0.6).band(0.6) == "high"
    assert Thresholds(decision=0.4, low=0.2, high=0.6).band(0.3) == "moderate"


def test_holdout_metrics_on_a_known_case():
    y = np.array([0, 0, 1, 1])
    m = holdout_metrics(y, np.array([0.1, 0.6, 0.4, 0.9]), threshold=0.5)
    assert m["roc_auc"] == 0.75
    assert m["sensitivity"] == 0.5 and m["specificity"] == 0.5 and m["accuracy"] == 0.5
    assert m["brier"] == pytest.approx((0.01 + 0.36 + 0.36 + 0.01) / 4)


@pytest.mark.parametrize("family", ["logistic_regression", "xgboost"])
def test_threaded_families_search_as_threads_and_score_as_with_processes(small, monkeypatch, family):
    """The backend changes where the fits run, not what they give: same choice, same fold scores, same predictions."""
    import joblib

    from training import models

    assert family in models.THREADED
    X, y, Xh, _ = small
    backends = []
    real = joblib.Parallel.__call__

    def recorded(self, iterable):
        backends.append(type(self._backend).__name__)
        return real(self, iterable)

    monkeypatch.setattr(joblib.Parallel, "__call__", recorded)
    threaded = train_family(family, X, y, folds=3, n_jobs=2)
    assert backends and set(backends) == {"ThreadingBackend"}
    monkeypatch.setattr(models, "THREADED", frozenset())
    backends.clear()
    processes = train_family(family, X, y, folds=3, n_jobs=2)
    assert backends and "ThreadingBackend" not in backends
    assert threaded.best_params == processes.best_params
    assert threaded.cv_scores == pytest.approx(processes.cv_scores, rel=1e-9)
    assert np.allclose(threaded.pipeline.predict_proba(Xh), processes.pipeline.predict_proba(Xh), rtol=1e-9)


def test_the_forest_chooses_and_scores_the_same_on_one_or_two_processes(small, monkeypatch):
    """The local target searches on every core (DR_SEARCH_JOBS=0): where the fits run must not change the model."""
    from training import models

    monkeypatch.setitem(models.GRIDS, "random_forest", {"model__max_depth": [3, None], "model__max_features": [0.5]})
    monkeypatch.setitem(models.HALVING, "random_forest", ("model__n_estimators", 9, 27))
    import joblib

    X, y, Xh, _ = small
    one = train_family("random_forest", X, y, folds=3, n_jobs=1, repeats=1)
    ran = []
    real = joblib.Parallel.__call__

    def recorded(self, iterable):
        ran.append((type(self._backend).__name__, self.n_jobs))
        return real(self, iterable)

    monkeypatch.setattr(joblib.Parallel, "__call__", recorded)
    two = train_family("random_forest", X, y, folds=3, n_jobs=2, repeats=1)
    assert ("LokyBackend", 2) in ran  # the fits did run on two worker processes
    assert one.best_params == two.best_params
    assert one.cv_scores == two.cv_scores
    assert np.array_equal(one.oof_proba, two.oof_proba)
    assert np.array_equal(one.pipeline.predict_proba(Xh), two.pipeline.predict_proba(Xh))
