"""`import aws_cdk` without executing the ~300 service modules the app never uses.

aws-cdk-lib's generated root package ends with `from . import aws_<service>` for every service: importing it ran
each module's class definitions, most of a synth's Python time. Here each `aws_cdk.<submodule>` is a placeholder
module until something asks it for a name; then its code runs, so the modules the app uses load as before and the
others never. jsii resolves the objects the CDK hands back by their
type name; a type from a module not loaded yet (a construct of another service reached through a property, say)
loads that module first (`_load_for`), so nothing is missing when jsii looks it up.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import sys
import threading
import types
from typing import Any

PACKAGE = "aws_cdk"
ASSEMBLY = "aws-cdk-lib."  # jsii's type names: "aws-cdk-lib.aws_lambda.Function"
_LOCK = threading.RLock()  # one module runs at a time; a module that imports another while it runs re-enters


class _LazyModule(types.ModuleType):
    """Stands for a submodule until something asks it for a name; then the submodule runs and its names are copied
    here, so whoever took this object early (`from aws_cdk import aws_lambda`) sees them. jsii's modules replace
    themselves in sys.modules when they finish (`publication.publish()`), which importlib's own LazyLoader refuses."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") and name.endswith("__") and name != "__all__":  # the import system's probes
            raise AttributeError(name)
        return getattr(_materialize(self), name)

    def __dir__(self) -> list[str]:
        return dir(_materialize(self))


def _materialize(placeholder: _LazyModule) -> types.ModuleType:
    with _LOCK:
        state = placeholder.__dict__
        if "_dr_real" in state:
            return state["_dr_real"]
        name, spec = state["__name__"], state["_dr_real_spec"]
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            sys.modules[name] = placeholder
            raise
        real = sys.modules[name]
        copied = {key: value for key, value in vars(real).items() if not key.startswith("__")}
        copied.update({key: vars(real)[key] for key in ("__all__", "__doc__") if key in vars(real)})
        state.update(copied)
        state["_dr_real"] = real
        parent, _, child = name.rpartition(".")
        if parent in sys.modules:
            setattr(sys.modules[parent], child, real)
        return real


class _Deferred(importlib.abc.Loader):
    def __init__(self, real_spec: importlib.machinery.ModuleSpec) -> None:
        self.real_spec = real_spec

    def create_module(self, spec):
        module = _LazyModule(spec.name)
        module.__dict__["_dr_real_spec"] = self.real_spec
        return module

    def exec_module(self, module) -> None:
        """Nothing runs until a name is asked for."""


class _LazySubmodules(importlib.abc.MetaPathFinder):
    """Finds `aws_cdk.<name>` (one level below the package) through the other finders and defers it."""

    def find_spec(self, fullname: str, path: Any, target: Any = None):
        if not fullname.startswith(PACKAGE + ".") or fullname.count(".") != 1 or fullname == PACKAGE + "._jsii":
            return None
        loaded = sys.modules.get(fullname)
        if loaded is not None and not isinstance(loaded, _LazyModule):  # importlib.reload of a loaded module
            return None
        real = importlib.machinery.PathFinder.find_spec(fullname, path, target)  # aws_cdk lives in site-packages
        if real is None or real.loader is None:
            return real
        spec = importlib.machinery.ModuleSpec(
            fullname, _Deferred(real), origin=real.origin, is_package=real.submodule_search_locations is not None
        )
        if real.submodule_search_locations is not None:
            spec.submodule_search_locations = list(real.submodule_search_locations)
        spec.has_location = real.has_location
        return spec


def _load_for(fqn: str | None) -> None:
    """Run the module that defines jsii type `fqn`, if it is one of aws_cdk's deferred submodules."""
    if not fqn or not fqn.startswith(ASSEMBLY):
        return
    module = sys.modules.get(f"{PACKAGE}.{fqn[len(ASSEMBLY) :].split('.', 1)[0]}")
    if isinstance(module, _LazyModule):
        _materialize(module)


def _patch_jsii() -> None:
    from jsii import _reference_map

    cls = _reference_map._ReferenceMap
    if getattr(cls.resolve, "_dr_lazy", False):
        return
    original = cls.resolve

    def resolve(self, kernel, ref):
        _load_for(ref.ref.rsplit("@", 1)[0])
        for fqn in getattr(ref, "interfaces", None) or ():
            _load_for(fqn)
        return original(self, kernel, ref)

    resolve._dr_lazy = True
    cls.resolve = resolve
    # jsii's kernel calls the module's `resolve_reference`, bound to the instance's original method at its import
    _reference_map.resolve_reference = _reference_map._refs.resolve


def install() -> bool:
    """Before `import aws_cdk`: its submodules load on first use. False (and nothing changed) if it is loaded."""
    if PACKAGE in sys.modules:
        return False
    if not any(isinstance(finder, _LazySubmodules) for finder in sys.meta_path):
        sys.meta_path.insert(0, _LazySubmodules())
    _patch_jsii()
    return True
