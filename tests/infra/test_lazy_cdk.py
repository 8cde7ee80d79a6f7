"""aws_cdk's service modules load on first use (infra_cdk/lazy_cdk.py): the same assembly as with all of them loaded,
and a type jsii hands back from a module not loaded yet loads that module first."""

from __future__ import annotations

import json
from pathlib import Path

from tests.unit.fresh_python import in_a_fresh_python

SYNTH = """
import sys
{first}
from infra_cdk.app import build
app, stack = build({{"target": "local"}}, outdir={out!r})
app.synth()
import json
print(json.dumps(sorted(n.split(".")[1] for n, m in sys.modules.items()
                        if n.startswith("aws_cdk.") and n.count(".") == 1 and type(m).__name__ != "_LazyModule")))
"""
ENV = {"HOME": str(Path.home()), "PYTHONDONTWRITEBYTECODE": "1"}  # jsii's package cache; nothing written


def _synth(out: Path, eager: bool) -> tuple[list[str], dict, dict]:
    code = SYNTH.format(first="import aws_cdk" if eager else "", out=str(out))  # aws_cdk first: nothing deferred
    executed = json.loads(in_a_fresh_python(code, **ENV).splitlines()[-1])
    template = json.loads((out / "DiabetesRisk.template.json").read_text())
    assets = json.loads((out / "DiabetesRisk.assets.json").read_text())
    return executed, template, assets


def test_the_deferred_modules_give_the_same_assembly(tmp_path):
    lazy, lazy_template, lazy_assets = _synth(tmp_path / "lazy", eager=False)
    eager, eager_template, eager_assets = _synth(tmp_path / "eager", eager=True)
    assert lazy_template == eager_template
    assert lazy_assets == eager_assets
    assert len(eager) >= 300  # aws-cdk-lib's root package runs every service module
    assert len(lazy) < len(eager) / 3  # only those the app (and what it returns) uses


RESOLVE = """
import sys
import infra_cdk  # defers the service modules
import aws_cdk
from jsii._kernel import _recursize_dereference  # where every value the kernel hands back is resolved
from jsii._kernel.types import EnumRef, ObjRef
before = [type(sys.modules[name]).__name__ for name in ("aws_cdk.aws_quicksight", "aws_cdk.aws_ecs")]
dashboard = _recursize_dereference(None, ObjRef(ref="aws-cdk-lib.aws_quicksight.CfnDashboard@10001"))
launch = _recursize_dereference(None, EnumRef(ref=ObjRef(ref="aws-cdk-lib.aws_ecs.LaunchType"), member="FARGATE"))
after = [type(sys.modules[name]).__name__ for name in ("aws_cdk.aws_quicksight", "aws_cdk.aws_ecs")]
print(before, type(dashboard).__name__, launch.name, after)
"""


def test_a_type_from_a_module_not_loaded_yet_loads_it_when_jsii_resolves_it():
    """Without the hook jsii answers 'Unknown type: aws-cdk-lib.aws_quicksight.CfnDashboard' (and for the enum)."""
    out = in_a_fresh_python(RESOLVE, **ENV).splitlines()[-1]
    assert out == "['_LazyModule', '_LazyModule'] CfnDashboard FARGATE ['module', 'module']"


def test_a_placeholder_behaves_as_its_module():
    code = (
        "import infra_cdk, aws_cdk, sys, importlib\n"
        "sns = sys.modules['aws_cdk.aws_sns']\n"
        "names = {}\nexec('from aws_cdk.aws_sns import *', names)\n"  # a star import runs it and finds __all__
        "print(type(sns).__name__, 'Topic' in names, 'Topic' in dir(sns), sns.__doc__ is not None,"
        " importlib.reload(sys.modules['aws_cdk.aws_sns']).__spec__.loader is not sns.__spec__.loader)"
    )
    assert in_a_fresh_python(code, **ENV).splitlines()[-1] == "_LazyModule True True True True"


def test_nothing_is_deferred_once_aws_cdk_is_loaded():
    code = (
        "import aws_cdk, sys\nfrom infra_cdk import lazy_cdk\n"
        "print(lazy_cdk.install(), type(sys.modules['aws_cdk.aws_quicksight']).__name__)"
    )
    assert in_a_fresh_python(code, **ENV).splitlines()[-1] == "False module"


def test_the_eager_switch_loads_every_module_as_before():
    """DR_CDK_EAGER_IMPORT=1, the bench's baseline: nothing is deferred."""
    code = "import infra_cdk, aws_cdk, sys\nprint(type(sys.modules['aws_cdk.aws_quicksight']).__name__)"
    assert in_a_fresh_python(code, DR_CDK_EAGER_IMPORT="1", **ENV).splitlines()[-1] == "module"
