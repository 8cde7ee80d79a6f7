"""What the install compiles (infra_cdk/bytecode.py): aws_cdk's service modules the app imports and what they import
at their top, not the others, and no test folders."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from infra_cdk.bytecode import app_modules, closure, skip_pattern


def test_app_modules_reads_every_way_the_app_names_a_service(tmp_path):
    (tmp_path / "a.py").write_text(
        "from aws_cdk import aws_s3 as s3, Duration\nfrom aws_cdk.aws_iam import Role\nimport aws_cdk.aws_sqs\n"
    )
    (tmp_path / "b.py").write_text("import aws_cdk as cdk\nfrom . import a\n")
    assert app_modules(tmp_path) == {"aws_s3", "Duration", "aws_iam", "aws_sqs"}


def _package(root: Path, modules: dict[str, str], top: str = "") -> Path:
    package = root / "aws_cdk"
    package.mkdir()
    (package / "__init__.py").write_text(top)
    for name, source in modules.items():
        (package / name).mkdir()
        (package / name / "__init__.py").write_text(source)
    return package


def test_closure_follows_the_generated_imports_transitively(tmp_path):
    package = _package(
        tmp_path,
        {
            "aws_a": "from .._jsii import *\nfrom ..aws_b import (\n    X as _X,\n)\n",
            "aws_b": "from ..aws_c import Y\nfrom ..interfaces.aws_z import IZ\n",
            "aws_c": "",
            "aws_d": "from ..aws_a import Q\n",  # imports the app's modules, but nothing imports it
            "interfaces": "",
        },
        top="from ._jsii import *\nfrom .cx_api import Thing\nfrom . import aws_d\n",
    )
    (package / "cx_api").mkdir()
    (package / "cx_api" / "__init__.py").write_text("")
    assert closure(package, {"aws_a", "Duration"}) == {"aws_a", "aws_b", "aws_c", "interfaces", "cx_api"}


def test_skip_pattern_leaves_out_unused_services_and_test_folders(tmp_path):
    site = tmp_path / "tests" / "venv" / "site-packages"  # a checkout under a folder named tests
    package = site / "aws_cdk"
    skip = skip_pattern(site, {"aws_lambda", "aws_iam"})
    assert skip.search(f"{package}/aws_quicksight/__init__.py")
    assert skip.search(f"{site}/pandas/tests/frame/test_api.py")
    for kept in ("aws_lambda/__init__.py", "aws_iam/__init__.py", "_jsii/__init__.py", "asset_awscli_v1/_jsii.py"):
        assert not skip.search(f"{package}/{kept}"), kept
    assert not skip.search(f"{package}/__init__.py")
    assert not skip.search(f"{site}/pandas/core/frame.py")  # the folders above site-packages do not count
    assert skip.search(f"{package}/aws_lambda_nodejs/__init__.py")  # a kept name's prefix does not keep it


def test_all_cdk_keeps_every_service_module(tmp_path):
    site = tmp_path / "site-packages"
    skip = skip_pattern(site, None)
    assert not skip.search(f"{site}/aws_cdk/aws_quicksight/__init__.py")
    assert skip.search(f"{site}/numpy/tests/test_x.py")


def test_the_install_compiles_again_when_the_apps_imports_may_have_changed():
    """The Makefile's bytecode step depends on infra_cdk's sources: an app that starts importing another service
    module gets it compiled by the next `make up`/`make demo` (make -n: what make would run, nothing runs)."""
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "MAKEFLAGS": ""}
    changed = subprocess.run(
        ["make", "-n", "-W", "infra_cdk/app.py", ".venv/.bytecode"], cwd=root, env=env, capture_output=True, text=True
    )
    assert "infra_cdk.bytecode" in changed.stdout, changed.stdout + changed.stderr
