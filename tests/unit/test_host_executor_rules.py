"""Pure rules of the host executor: what it refuses, which interpreter, AWS's timeout wording."""

import re

import pytest
from dr_host_executor.process import check_supported, python_for, timeout_message


@pytest.mark.parametrize("runtime", ["nodejs20.x", "java21", "provided.al2023", None])
def test_non_python_runtimes_are_refused_with_the_runtime_named(runtime):
    with pytest.raises(ValueError, match="Python runtimes only") as info:
        check_supported(runtime, "Zip")
    assert repr(runtime) in str(info.value)


def test_image_packages_are_refused():
    with pytest.raises(ValueError, match="zip-packaged"):
        check_supported(None, "Image")


def test_python_zip_is_accepted():
    check_supported("python3.13", "Zip")


def test_interpreter_override_wins(monkeypatch):
    monkeypatch.setenv("DR_LAMBDA_PYTHON", "/opt/py/bin/python")
    assert python_for("python3.13") == "/opt/py/bin/python"
    monkeypatch.delenv("DR_LAMBDA_PYTHON")
    monkeypatch.setenv("LAMBDA_HOST_PYTHON_3_12", "/opt/py312/bin/python")
    assert python_for("python3.12") == "/opt/py312/bin/python"


def test_timeout_message_matches_aws():
    message = timeout_message("abc-123", 3)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.000Z abc-123 Task timed out after 3\.00 seconds", message)
