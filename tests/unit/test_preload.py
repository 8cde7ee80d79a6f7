"""Each training step's libraries are imported at init (the handler module), not in its first request, and only
that step's: Train does not load MLflow, Register does not load scikit-learn's search."""

from __future__ import annotations

import json

import pytest

from infra_cdk.training import STEPS
from tests.unit.fresh_python import in_a_fresh_python
from training.preload import FEAST_STEPS, MLFLOW_STEPS, STEP_IMPORTS, preload, step_of


def test_every_deployed_step_has_an_import_list():
    """A new step without a list would silently keep its imports in its first request."""
    assert {handler for handler, *_ in STEPS.values()} == set(STEP_IMPORTS)


def test_step_of_reads_the_lambda_handler_setting():
    assert step_of("training_steps.handlers.train") == "train"
    assert step_of("") is None and step_of(None) is None


def test_an_unknown_or_missing_step_imports_nothing():
    assert preload("no_such_step") == () and preload(None) == ()


HANDLER_IMPORT = """
import json, sys
sys.path.insert(0, "functions")
import training_steps.handlers as h
print(json.dumps({"preloaded": list(h.PRELOADED), "loaded": sorted(m for m in %r if m in sys.modules)}))
"""
WATCHED = ["mlflow", "feast", "sklearn.model_selection", "skl2onnx", "xgboost", "onnxruntime"]
ENV = {"DR_ARTIFACTS_BUCKET": "unused", "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x"}
LOCAL = {**ENV, "DR_PRELOAD_AT_INIT": "true"}  # as the CDK app sets it for the local target


@pytest.mark.parametrize(
    ("step", "expected"),
    [
        ("register", {"mlflow", "feast"}),  # MLflow's first request loads Feast's plugin: Feast the fast way first
        ("export", {"skl2onnx", "xgboost", "onnxruntime", "sklearn.model_selection"}),
        ("train", {"xgboost", "sklearn.model_selection"}),
    ],
)
def test_the_handler_module_imports_its_steps_libraries_at_init(step, expected):
    out = json.loads(
        in_a_fresh_python(HANDLER_IMPORT % WATCHED, _HANDLER=f"training_steps.handlers.{step}", **LOCAL).splitlines()[
            -1
        ]
    )
    assert out["preloaded"] == list(STEP_IMPORTS[step])
    assert set(out["loaded"]) == expected


def test_without_a_handler_setting_nothing_heavy_is_imported():
    """Unit tests and tools that import the handlers keep the lean import (no Lambda _HANDLER)."""
    out = json.loads(in_a_fresh_python(HANDLER_IMPORT % WATCHED, **LOCAL).splitlines()[-1])
    assert out == {"preloaded": [], "loaded": []}


def test_on_aws_the_imports_stay_in_the_request():
    """No DR_PRELOAD_AT_INIT (the AWS target): init stays lean, within Lambda's 10 s on-demand init."""
    out = json.loads(
        in_a_fresh_python(HANDLER_IMPORT % WATCHED, _HANDLER="training_steps.handlers.register", **ENV).splitlines()[-1]
    )
    assert out == {"preloaded": [], "loaded": []}


EVERY_LIST = """
import sys, typeguard
from training.imports import _unchecked
from training.preload import STEP_IMPORTS, FEAST_STORES, preload
for step in STEP_IMPORTS:
    assert preload(step) == STEP_IMPORTS[step], step
    assert all(name in sys.modules for name in STEP_IMPORTS[step]), step
assert all(name in sys.modules for name in FEAST_STORES)
assert typeguard.typechecked is not _unchecked  # Feast's window closed again
print("ok")
"""


def test_every_steps_list_imports():
    assert in_a_fresh_python(EVERY_LIST, **ENV).splitlines()[-1] == "ok"


def test_the_feast_and_mlflow_steps_are_steps():
    assert set(STEP_IMPORTS) >= FEAST_STEPS and set(STEP_IMPORTS) >= MLFLOW_STEPS
