"""LocalStack's `on_infra_start` hook decorator, or a pass-through where LocalStack is not installed (the project's
venv, where the unit tests import the patch modules)."""

from __future__ import annotations

try:
    from localstack.runtime import hooks

    on_infra_start = hooks.on_infra_start()
except ImportError:  # pragma: no cover - imported outside LocalStack's venv (unit tests)

    def on_infra_start(function):
        return function
