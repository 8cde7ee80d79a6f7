"""What each training step imports on its first call, imported ahead of it instead.

The step handlers share one module and import their heavy libraries where they are used, so a step never loads
another step's (scikit-learn in Register, MLflow in Train). A Lambda's cold start is init (the handler's module)
then the first request: importing the step's own libraries at init moves that cost out of the request and, on the
local cloud, out of the run altogether, since the executor starts each function's environment when it is deployed
(localcloud's `lambda_prewarm`). On AWS the total of a cold start is unchanged.
"""

from __future__ import annotations

import importlib

from .imports import import_feast, import_mlflow

# step → the modules its first call imports (by hand from the steps' lazy imports; `tests/unit/test_preload.py`
# runs each step's import list in a fresh interpreter)
STEP_IMPORTS: dict[str, tuple[str, ...]] = {
    "validate": ("training.validation", "training.identity"),
    "features": ("training.features", "s3fs"),
    "train": ("training.models",),
    "evaluate": ("training.evaluate", "training.stats", "training.models", "training.profile"),
    "export": ("training.export", "skl2onnx", "onnxmltools", "onnxruntime", "xgboost"),
    "register": ("training.tracking", "training.model_card", "training.identity", "onnx"),
    "promote": ("training.tracking", "training.stats", "onnxruntime", "sklearn.linear_model"),
    "materialize": ("training.features",),
    "record_failure": (),
}
FEAST_STEPS = frozenset({"features", "materialize"})
MLFLOW_STEPS = frozenset({"register", "promote"})


def step_of(handler: str | None) -> str | None:
    """`training_steps.handlers.train` → `train` (the handler setting Lambda passes as _HANDLER)."""
    if not handler:
        return None
    return handler.rsplit(".", 1)[-1]


def preload(step: str | None) -> tuple[str, ...]:
    """Import what `step` needs; unknown steps import nothing. Returns the modules imported, for the log."""
    if step not in STEP_IMPORTS:
        return ()
    if step in FEAST_STEPS:
        import_feast()
    if step in MLFLOW_STEPS:
        import_mlflow()
    for name in STEP_IMPORTS[step]:
        importlib.import_module(name)
    return STEP_IMPORTS[step]
