"""Deploy the CDK app: cdklocal to the embedded local cloud, or cdk to AWS. Same app, one context value."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from localcloud.settings import PROJECT_ROOT, LocalCloudSettings, keeps_bytecode

STACK = "DiabetesRisk"
NODE_BIN = PROJECT_ROOT / "node_modules" / ".bin"


class DeployError(RuntimeError):
    """Deployment failed; the message carries the tool's last lines."""


def cdk_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """CDK's environment; the app's Python keeps its bytecode (keeps_bytecode): a synth's aws_cdk modules are
    compiled once, not on every synth."""
    env = keeps_bytecode({**os.environ, **(extra or {})})
    env.update(
        {
            "JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION": "1",
            "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "1",
            "CDK_DISABLE_VERSION_CHECK": "1",
            "PYTHONWARNINGS": "ignore",
        }
    )
    return env


def _tool(name: str) -> str:
    path = NODE_BIN / name
    if not path.exists():
        raise DeployError(f"{path} is missing: run `make install` (it installs the CDK CLI tools with npm ci)")
    return str(path)


def _run(cmd: list[str], env: dict[str, str], log: Path, on_line: Callable[[str], None]) -> None:
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as out:
        proc = subprocess.Popen(
            cmd,
            env=env,
            cwd=PROJECT_ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            stdin=subprocess.DEVNULL,
        )
        assert proc.stdout is not None
        for line in proc.stdout:
            out.write(line)
            if line.strip() and "typeguard" not in line.lower():
                on_line(line.rstrip())
        code = proc.wait()
    if code != 0:
        tail = "".join(log.read_text().splitlines(keepends=True)[-20:])
        raise DeployError(f"{' '.join(cmd[:2])} failed (exit {code}); log {log}:\n{tail}")


# What a deploy to the local cloud uses of CDK's bootstrap stack (CDKToolkit): the file-asset staging bucket and the
# version parameter the template's CheckBootstrapVersion rule and the CLI read. Its IAM roles are assumed but the
# local cloud does not enforce IAM, and its ECR repository serves container-image assets, which the local target has
# none of. So they are made directly (well under a second) instead of deploying that stack (≈ 40 s).
QUALIFIER = "hnb659fds"
BOOTSTRAP_VERSION = "33"  # the version of the bootstrap template shipped with the pinned CDK CLI


def prepare_assets_target(cloud: LocalCloudSettings) -> bool:
    """The staging bucket and version parameter, created if missing; True when something was created."""
    from localcloud.smoke import clients

    s3, ssm = clients(cloud, "s3", "ssm")
    bucket = f"cdk-{QUALIFIER}-assets-000000000000-{cloud.region}"
    created = False
    try:
        s3.head_bucket(Bucket=bucket)
    except s3.exceptions.ClientError:
        s3.create_bucket(Bucket=bucket)
        created = True
    name = f"/cdk-bootstrap/{QUALIFIER}/version"
    try:
        ssm.get_parameter(Name=name)
    except ssm.exceptions.ParameterNotFound:
        ssm.put_parameter(Name=name, Type="String", Value=BOOTSTRAP_VERSION)
        created = True
    return created


def is_bootstrapped(cloud: LocalCloudSettings) -> bool:
    from localcloud.smoke import clients

    (cfn,) = clients(cloud, "cloudformation")
    try:
        stacks = cfn.describe_stacks(StackName="CDKToolkit")["Stacks"]
    except cfn.exceptions.ClientError:
        return False
    return bool(stacks) and stacks[0]["StackStatus"].endswith("_COMPLETE")


def ensure_issuer(cloud: LocalCloudSettings) -> bool:
    """The local cloud's stand-in for Cognito: a key pair, created once and kept (tokens survive redeploys)."""
    from auth.issuer import ensure_local_issuer
    from localcloud.smoke import clients

    ssm, secrets = clients(cloud, "ssm", "secretsmanager")
    return ensure_local_issuer(ssm, secrets, STACK)


# Never part of what the app is synthesized from: environments, caches, build outputs, editor folders.
_NOT_SOURCES = {".git", ".venv", "node_modules", ".state", "cdk.out", "__pycache__", ".pytest_cache", ".ruff_cache"}
_NOT_SOURCES |= {".mypy_cache", ".hypothesis", ".schemathesis", ".idea", ".vscode", "mlruns", "dist", "build"}
# The CDK libraries the app runs with, and the CLI that deploys (its version from node_modules)
_CDK_PACKAGES = ("aws-cdk-lib", "constructs", "cdk-nag", "jsii")


def synth_key(context: list[str], root: Path | None = None, skip: tuple[Path, ...] = ()) -> str | None:
    """What a synthesized assembly was made from: every regular file of the project (environments, caches and build
    outputs aside; a symbolic link by its target's name), the context given to CDK, the installed CDK libraries and
    CLI, and the user's ~/.cdk.json. Any change to any of them changes the key. None when the tree cannot be read
    (a file vanished mid-walk, say): then there is no key, and the app is synthesized."""
    import hashlib
    import stat
    from importlib.metadata import PackageNotFoundError, version

    root = root or PROJECT_ROOT
    skipped = {str(path.resolve()) for path in skip}
    digest = hashlib.sha256()

    def add(*values: str) -> None:
        for value in values:
            digest.update(value.encode() + b"\0")

    add(*context)
    for package in _CDK_PACKAGES:
        try:
            add(package, version(package))
        except PackageNotFoundError:
            add(package, "-")
    try:
        for extra in (root / "node_modules" / "aws-cdk" / "package.json", Path.home() / ".cdk.json"):
            add(str(extra), extra.read_text() if extra.is_file() else "-")
        for folder, dirs, files in os.walk(root):
            dirs[:] = sorted(
                d
                for d in dirs
                if d not in _NOT_SOURCES and not d.endswith(".egg-info") and os.path.join(folder, d) not in skipped
            )
            for d in dirs:  # a linked folder is listed but not entered: its target's name counts
                if os.path.islink(os.path.join(folder, d)):
                    add(os.path.join(os.path.relpath(folder, root), d), "->", os.readlink(os.path.join(folder, d)))
            for name in sorted(files):
                if name.endswith((".pyc", ".pyo")):
                    continue
                path = Path(folder, name)
                info = path.lstat()
                add(str(path.relative_to(root)))
                if stat.S_ISLNK(info.st_mode):
                    add("->", os.readlink(path))
                elif stat.S_ISREG(info.st_mode):
                    with path.open("rb") as fh:
                        digest.update(hashlib.file_digest(fh, "sha256").digest())
    except OSError:
        return None
    return digest.hexdigest()


def local_context(cloud: LocalCloudSettings) -> list[str]:
    """The CDK context of a local deploy: the target and the endpoints the functions reach the local cloud's
    services at (ports from the settings, so it is known before the cloud is up)."""
    return [
        "-c",
        "target=local",
        "-c",
        f"mlflow_uri={cloud.functions_mlflow_url or cloud.mlflow_url}",
        "-c",
        f"s3_endpoint={cloud.functions_s3_endpoint or cloud.localstack_url}",
        "-c",
        f"remote_write_url={cloud.functions_remote_write_url or cloud.remote_write_url}",
    ]


def kept_assembly(cloud: LocalCloudSettings) -> tuple[Path, Path]:
    """Where the last synthesized assembly is kept, and the file holding the key it was made from."""
    return cloud.run_dir / "cdk.out", cloud.run_dir / "cdk.out.key"


def assembly_holds(cloud: LocalCloudSettings, key: str | None) -> bool:
    """True when the kept assembly was made from `key` and its template and manifest are there."""
    assembly, stamp = kept_assembly(cloud)
    return (
        key is not None
        and stamp.is_file()
        and stamp.read_text().strip() == key
        and (assembly / f"{STACK}.template.json").is_file()
        and (assembly / "manifest.json").is_file()
    )


def local_key(cloud: LocalCloudSettings) -> str | None:
    """The synth key of the local target's app as it is now (`synth_key` over its context and region)."""
    return synth_key([*local_context(cloud), cloud.region], skip=(cloud.state_dir,))


def _keep_if_unchanged(cloud: LocalCloudSettings, key: str | None) -> bool:
    """After a synth: the key is written only when the tree still has it (a file changed, or could not be read,
    while CDK read the sources leaves none, so the next deploy synthesizes). True when it was written."""
    if key is None or local_key(cloud) != key:
        return False
    kept_assembly(cloud)[1].write_text(key + "\n")
    return True


def _local_cdk_env(cloud: LocalCloudSettings) -> dict[str, str]:
    env = cdk_env(cloud.client_env())
    env.update({"CDK_DEFAULT_ACCOUNT": "000000000000", "CDK_DEFAULT_REGION": cloud.region})
    return env


def synth_local(cloud: LocalCloudSettings, on_line: Callable[[str], None], fresh_synth: bool = False) -> dict:
    """Synthesize the app for the local target into the kept assembly, with its key, and deploy nothing: the next
    `deploy` finds it and deploys it without synthesizing. It needs no running cloud (the context comes from the
    settings), so `make demo` runs it beside `local up`. An unchanged app is not synthesized again unless
    `fresh_synth`. The key is written only when no file changed while CDK read them."""
    context = local_context(cloud)
    assembly, stamp = kept_assembly(cloud)
    key = local_key(cloud)
    if not fresh_synth and assembly_holds(cloud, key):
        return {"assembly": "kept", "key": key, "synth_s": 0.0}
    stamp.unlink(missing_ok=True)
    t0 = time.perf_counter()
    _run(
        [_tool("cdklocal"), "synth", STACK, "--quiet", *context, "--output", str(assembly)],
        _local_cdk_env(cloud),
        cloud.logs_dir / "cdk-synth.log",
        on_line,
    )
    kept = _keep_if_unchanged(cloud, key)
    return {
        "assembly": "synthesized" if kept else "synthesized, not kept",
        "key": key,
        "synth_s": round(time.perf_counter() - t0, 1),
    }


def deploy_local(
    cloud: LocalCloudSettings, on_line: Callable[[str], None], bootstrap: bool = False, fresh_synth: bool = False
) -> dict:
    """Deploy with cdklocal; returns the stack outputs and timings. The assets' staging bucket and version parameter
    are made directly; `bootstrap=True` deploys CDK's whole bootstrap stack instead (once per local cloud).

    The synthesized assembly is kept (run dir, `cdk.out`) with the key of what it was made from (`synth_key`); when
    the key is unchanged the next deploy deploys that assembly instead of synthesizing again (bench_loop: 9.3 s
    instead of 18.2 s; `import aws_cdk` alone is 8 s). `fresh_synth=True` always synthesizes."""
    env = _local_cdk_env(cloud)
    timings = {}
    if not bootstrap:
        t0 = time.perf_counter()
        if prepare_assets_target(cloud):
            on_line("created the assets' staging bucket and the bootstrap version parameter (no bootstrap stack)")
        timings["assets_target_s"] = round(time.perf_counter() - t0, 2)
    elif not is_bootstrapped(cloud):
        t0 = time.perf_counter()
        _run(
            [_tool("cdklocal"), "bootstrap", f"aws://000000000000/{cloud.region}"],
            env,
            cloud.logs_dir / "cdk-bootstrap.log",
            on_line,
        )
        timings["bootstrap_s"] = round(time.perf_counter() - t0, 1)
    t0 = time.perf_counter()
    if ensure_issuer(cloud):
        on_line("created the local token issuer (private key in Secrets Manager, JWKS in SSM)")
    timings["issuer_s"] = round(time.perf_counter() - t0, 2)
    outputs_file = cloud.run_dir / "outputs.json"
    context = local_context(cloud)
    assembly, stamp = kept_assembly(cloud)
    key = local_key(cloud)
    reuse = not fresh_synth and assembly_holds(cloud, key)
    if reuse:
        on_line(f"the app is unchanged since its last synth (key {key[:12]}): deploying that assembly")
        source = ["--app", str(assembly)]
    else:
        stamp.unlink(missing_ok=True)  # written again only once this synth has deployed
        source = [*context, "--output", str(assembly)]
    t0 = time.perf_counter()
    try:
        _run(
            [
                _tool("cdklocal"),
                "deploy",
                STACK,
                "--require-approval",
                "never",
                "--progress",
                "events",
                *source,
                "--outputs-file",
                str(outputs_file),
            ],
            env,
            cloud.logs_dir / "cdk-deploy.log",
            on_line,
        )
    except DeployError as exc:
        if reuse:  # whatever broke, the next deploy synthesizes afresh
            stamp.unlink(missing_ok=True)
            raise DeployError(f"{exc}\n(the kept assembly was deployed; the next deploy synthesizes afresh)") from exc
        raise
    if not reuse:
        _keep_if_unchanged(cloud, key)
    timings["deploy_s"] = round(time.perf_counter() - t0, 1)
    outputs = json.loads(outputs_file.read_text())[STACK]
    return {"outputs": outputs, "timings": timings, "assembly": "reused" if reuse else "synthesized"}


def deploy_aws(mlflow_uri: str, on_line: Callable[[str], None], log_dir: Path) -> None:
    """`cdk deploy -c target=aws`: container images for the heavy steps (needs Docker and AWS credentials)."""
    cmd = [_tool("cdk"), "deploy", STACK, "-c", "target=aws", "-c", f"mlflow_uri={mlflow_uri}"]
    _run(cmd, cdk_env(), log_dir / "cdk-deploy-aws.log", on_line)


def stack_outputs(cloud: LocalCloudSettings) -> dict[str, str]:
    """The deployed stack's outputs, read from CloudFormation (so they are never stale)."""
    from localcloud.smoke import clients

    (cfn,) = clients(cloud, "cloudformation")
    try:
        stack = cfn.describe_stacks(StackName=STACK)["Stacks"][0]
    except cfn.exceptions.ClientError as exc:
        raise DeployError(f"the {STACK} stack is not deployed here: run `diabetes-risk deploy` first") from exc
    return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}


FUNCTIONS_DIR = PROJECT_ROOT / "functions"


def functions_zip(source: Path = FUNCTIONS_DIR) -> bytes:
    """The functions/ folder as the local target ships it (no Dockerfiles, no bytecode), byte-for-byte the same for
    the same files (fixed timestamps), so an unchanged folder is recognised by its sha256."""
    import io
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(p for p in source.rglob("*") if p.is_file()):
            rel = path.relative_to(source)
            if path.name.endswith(".Dockerfile") or "__pycache__" in rel.parts:
                continue
            info = zipfile.ZipInfo(str(rel), date_time=(2020, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            zf.writestr(info, path.read_bytes(), zipfile.ZIP_DEFLATED)
    return buf.getvalue()


def hotswap_local(
    cloud: LocalCloudSettings, source: Path = FUNCTIONS_DIR, only: tuple[str, ...] = (), on_line=lambda _: None
) -> dict:
    """A handler-only change into the running local cloud without CloudFormation: the stack's functions get the new
    code directly (UpdateFunctionCode) when it differs from what they run. New execution environments start with it;
    warm ones are replaced. Infrastructure changes (settings, permissions, new functions) still need `deploy`."""
    import base64
    import hashlib

    from localcloud.smoke import clients

    started = time.perf_counter()
    cfn, lam = clients(cloud, "cloudformation", "lambda")
    try:
        resources = cfn.get_paginator("list_stack_resources").paginate(StackName=STACK)
        names = [
            r["PhysicalResourceId"]
            for page in resources
            for r in page["StackResourceSummaries"]
            if r["ResourceType"] == "AWS::Lambda::Function"
        ]
    except cfn.exceptions.ClientError as exc:
        raise DeployError(f"the {STACK} stack is not deployed here: run `diabetes-risk deploy` first") from exc
    if only:
        wanted = [n for n in names if any(part.lower() in n.lower() for part in only)]
        if not wanted:
            raise DeployError(
                f"no deployed function matches {', '.join(only)}; the stack has: {', '.join(sorted(names))}"
            )
        names = wanted
    code = functions_zip(source)
    digest = base64.b64encode(hashlib.sha256(code).digest()).decode()
    updated, unchanged = [], []
    for name in names:
        if lam.get_function_configuration(FunctionName=name)["CodeSha256"] == digest:
            unchanged.append(name)
            continue
        lam.update_function_code(FunctionName=name, ZipFile=code)
        updated.append(name)
        on_line(f"updated {name}")
    waiter = lam.get_waiter("function_updated_v2")
    for name in updated:
        waiter.wait(FunctionName=name, WaiterConfig={"Delay": 0.2, "MaxAttempts": 300})
    return {
        "updated": updated,
        "unchanged": unchanged,
        "bytes": len(code),
        "seconds": round(time.perf_counter() - started, 2),
    }
