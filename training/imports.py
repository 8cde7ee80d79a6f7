"""Feast and MLflow, imported without the work nobody here uses (measured on 2 cores; `bench/bench_loop.py`
shows the training states' times)."""

from __future__ import annotations

import sys
from types import ModuleType


def _unchecked(target=None, **_options):
    """typeguard's `typechecked` as it behaves under `python -O`: the target unchanged (bare or with options)."""
    return target if target is not None else _unchecked


def import_feast(also: tuple[str, ...] = ()) -> ModuleType:
    """Import Feast without typeguard instrumenting its classes.

    Feast decorates its classes with typeguard's `@typechecked`, and typeguard (4.2, the newest jsii allows; 4.6
    does the same) instruments each method by re-reading and re-parsing its whole module: 2.4 s of Feast's 3.5 s
    import, paid by every cold start that loads Feast. The checks only cover the argument types of Feast's own
    constructors (our definitions are fixed and exercised by the tests), and typeguard itself skips them under
    `python -O`. So `typechecked` is that no-op while Feast loads and is put back afterwards for everyone else.
    Feast modules loaded later (its online store, on first use) keep their checks, unless named in `also`: those are
    imported in the same window (training.preload's stores), when Feast is not loaded yet."""
    if "feast" in sys.modules:
        return sys.modules["feast"]
    import importlib

    import typeguard

    checked = typeguard.typechecked
    typeguard.typechecked = _unchecked
    try:
        import feast

        for name in also:
            importlib.import_module(name)
    finally:
        typeguard.typechecked = checked
    return feast


def import_mlflow() -> ModuleType:
    """Import MLflow, with Feast already loaded the fast way.

    On its first request MLflow loads every `mlflow.request_header_provider` plugin. Feast registers one (it adds a
    token only inside Feast's own MLflow data source, which this project does not use), and its module imports the
    whole `feast` package: Register, Promote and `diabetes-risk models` paid Feast's full import without using Feast."""
    import_feast()
    import mlflow

    return mlflow
