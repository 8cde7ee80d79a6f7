"""The offline config checks of `make lint`: each passes on the repository's file and fails on a deliberately
broken copy, so a check that silently stopped checking would be caught here."""

from __future__ import annotations

import ast
import json
import re
import shutil
import tomllib
from pathlib import Path

import pytest

from config_checks import checks
from config_checks.checks import ROOT

COMPOSE = ROOT / "docker-compose.yml"
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
CI = ROOT / ".github" / "workflows" / "ci.yml"
DEPENDABOT = ROOT / ".github" / "dependabot.yml"
SAMCONFIG = ROOT / "samconfig.toml"
LOCALSTACK_DOCKERFILE = ROOT / "compose" / "localstack.Dockerfile"


def broken(tmp_path: Path, source: Path, old: str, new: str, name: str | None = None) -> Path:
    """A copy of `source` with one edit; the edit must apply (else the test would check nothing)."""
    text = source.read_text()
    assert old in text, f"{old!r} not in {source.name}: the test's edit no longer applies"
    target = tmp_path / (name or source.name)
    target.write_text(text.replace(old, new, 1))
    return target


def compose_copy(tmp_path: Path, old: str, new: str) -> Path:
    """A broken compose file next to a copy of what it builds and mounts (relative paths resolve there)."""
    for folder in ("compose", "observability"):
        shutil.copytree(ROOT / folder, tmp_path / folder, ignore=shutil.ignore_patterns("__pycache__"))
    return broken(tmp_path, COMPOSE, old, new)


# --- docker-compose.yml ------------------------------------------------------------------------------------
def test_compose_file_passes_every_compose_check():
    for result in (checks.compose_config(COMPOSE), checks.compose_schema(COMPOSE), checks.compose_policy(COMPOSE)):
        assert result.ok, f"{result.name}: {result.output}"


def test_compose_config_fails_on_an_undefined_dependency(tmp_path):
    result = checks.compose_config(
        compose_copy(tmp_path, "      postgres:\n        condition", "      pg:\n        condition")
    )
    assert not result.ok
    assert "undefined service" in result.output


def test_compose_schema_fails_on_an_unknown_key(tmp_path):
    result = checks.compose_schema(compose_copy(tmp_path, "    healthcheck:\n      <<", "    healthcheks:\n      <<"))
    assert not result.ok
    assert "healthcheks" in result.output


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ('"127.0.0.1:${DR_MLFLOW_PORT:-5000}:5000"', '"${DR_MLFLOW_PORT:-5000}:5000"', "not bound to 127.0.0.1"),
        ("image: postgres:17.6-alpine", "image: postgres:latest", "no exact tag"),
        ("image: prom/alertmanager:v0.25.0", "image: prom/alertmanager", "no exact tag"),
        (
            "  mlflow:\n    image: ghcr.io/mlflow/mlflow:v3.17.2-full",
            "  mlflow:\n    image: ghcr.io/mlflow/mlflow:v3.1.0-full",
            "differs from uv.lock",
        ),
        (
            "      postgres:\n        condition: service_healthy",
            "      postgres:\n        condition: service_started",
            "without condition",
        ),
        (
            "- ./observability/prometheus/rules:/etc/prometheus/rules:ro",
            "- ./observability/prometheus/rules:/etc/prometheus/rules",
            "mounted writable",
        ),
    ],
    ids=["port-on-all-interfaces", "latest-tag", "untagged", "mlflow-version", "depends-without-health", "rw-bind"],
)
def test_compose_policy_fails_on_each_broken_promise(tmp_path, old, new, message):
    result = checks.compose_policy(compose_copy(tmp_path, old, new))
    assert not result.ok
    assert message in result.output


def _service_block(service: str, key: str, until: str) -> str:
    text = COMPOSE.read_text()
    rest = text[text.index(f"  {service}:") :]
    return rest[rest.index(f"    {key}:") : rest.index(f"    {until}:")]


def test_compose_policy_fails_on_a_service_without_healthcheck(tmp_path):
    result = checks.compose_policy(compose_copy(tmp_path, _service_block("grafana", "healthcheck", "restart"), ""))
    assert not result.ok
    assert "grafana: long-running service without a healthcheck" in result.output


def test_compose_policy_is_not_fooled_by_a_service_without_restart(tmp_path):
    """Only a job others wait on to complete may go without a healthcheck, not any service lacking `restart`."""
    block = _service_block("grafana", "healthcheck", "restart") + "    restart: unless-stopped\n"
    result = checks.compose_policy(compose_copy(tmp_path, block, ""))
    assert not result.ok
    assert "grafana: long-running service without a healthcheck" in result.output


def test_compose_policy_fails_on_an_anonymous_volume(tmp_path):
    result = checks.compose_policy(compose_copy(tmp_path, "      - prometheus-data:/prometheus", "      - /prometheus"))
    assert not result.ok
    assert "anonymous volume at /prometheus" in result.output


def test_compose_policy_ties_localstack_image_to_the_embedded_cloud_pin(tmp_path):
    pin = checks._localstack_pin()
    assert f"FROM localstack/localstack:{pin}" in LOCALSTACK_DOCKERFILE.read_text()
    assert f"localstack-core[runtime]=={pin}" in (ROOT / "localcloud" / "localstack-requirements.txt").read_text()
    other = broken(tmp_path, LOCALSTACK_DOCKERFILE, f"localstack/localstack:{pin}", "localstack/localstack:4.15.0")
    result = checks.compose_policy(COMPOSE, dockerfile=other)
    assert not result.ok
    assert "localstack-requirements.txt" in result.output


def test_compose_image_tags_match_the_embedded_cloud_versions():
    """Prometheus and Alertmanager run the versions whose promtool/amtool check the rules here (Debian's)."""
    text = COMPOSE.read_text()
    assert "prom/prometheus:v2.42.0" in text
    assert "prom/alertmanager:v0.25.0" in text


# --- Dockerfiles -------------------------------------------------------------------------------------------
def test_dockerfiles_pass_hadolint():
    result = checks.hadolint([LOCALSTACK_DOCKERFILE, ROOT / "functions" / "training.Dockerfile"])
    assert result.ok, result.output


def test_hadolint_fails_on_a_broken_dockerfile(tmp_path):
    bad = broken(tmp_path, ROOT / "functions" / "training.Dockerfile", "WORKDIR /build\n", "", "Dockerfile")
    bad.write_text(bad.read_text().replace("uv export", "cd /build && uv export"))
    result = checks.hadolint([bad])
    assert not result.ok
    assert "DL3003" in result.output  # cd instead of WORKDIR


def test_host_executor_parses_with_python_311_grammar():
    """The compose image's LocalStack may import the executor with Python 3.11 (its pyproject says >=3.11)."""
    for path in (ROOT / "localcloud" / "host_executor" / "dr_host_executor").glob("*.py"):
        ast.parse(path.read_text(), filename=str(path), feature_version=(3, 11))
    with pytest.raises(SyntaxError):  # the guard itself: 3.12 syntax is refused under 3.11's grammar
        ast.parse("type Alias = int\n", feature_version=(3, 11))


# --- GitHub Actions and dependabot ------------------------------------------------------------------------
def test_workflows_and_dependabot_pass_every_check():
    for result in (
        checks.workflows_schema(WORKFLOWS),
        checks.dependabot_schema(DEPENDABOT),
        checks.actionlint(WORKFLOWS),
        checks.zizmor([*WORKFLOWS, DEPENDABOT]),
    ):
        assert result.ok, f"{result.name}: {result.output}"


def test_workflow_schema_fails_without_runs_on(tmp_path):
    result = checks.workflows_schema([broken(tmp_path, CI, "    runs-on: ubuntu-24.04\n", "", "ci.yml")])
    assert not result.ok


def test_dependabot_schema_fails_on_an_unknown_ecosystem(tmp_path):
    result = checks.dependabot_schema(broken(tmp_path, DEPENDABOT, "package-ecosystem: uv", "package-ecosystem: uvx"))
    assert not result.ok


def test_actionlint_runs_shellcheck_on_run_steps(tmp_path):
    bad = broken(tmp_path, CI, "        run: .ci/run\n", "        run: cd $GITHUB_WORKSPACE; echo $1\n", "ci.yml")
    result = checks.actionlint([bad])
    assert not result.ok
    assert "shellcheck" in result.output
    assert "SC2086" in result.output


def test_actionlint_fails_on_an_unknown_expression(tmp_path):
    bad = broken(tmp_path, CI, "${{ env.PYTHON_VERSION }}", "${{ envs.PYTHON_VERSION }}", "ci.yml")
    result = checks.actionlint([bad])
    assert not result.ok
    assert "envs" in result.output


@pytest.mark.parametrize(
    ("old", "new", "audit"),
    [
        (
            "uses: actions/checkout@11bd71901bbe5b1630ceea73d27597364c9af683 # v4.2.2",
            "uses: actions/checkout@v4",
            "unpinned-uses",
        ),
        ("        with:\n          persist-credentials: false\n", "", "artipacked"),
        ("permissions:\n  contents: read\n", "permissions: write-all\n", "excessive-permissions"),
    ],
    ids=["tag-not-sha", "persisted-credentials", "write-all"],
)
def test_zizmor_fails_on_each_insecure_pattern(tmp_path, old, new, audit):
    result = checks.zizmor([broken(tmp_path, CI, old, new, "ci.yml")])
    assert not result.ok
    assert audit in result.output


def test_every_action_is_pinned_by_sha_with_its_tag_noted():
    for path in WORKFLOWS:
        for use in re.findall(r"uses:\s*(\S+.*)", path.read_text()):
            if use.startswith("$/.github/workflows/"):  # this repository's own reusable workflow
                continue
            assert re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40} # v[\d.]+", use), f"{path.name}: {use}"


def test_every_job_has_a_timeout_and_workflows_read_only_by_default():
    import yaml

    for path in WORKFLOWS:
        workflow = yaml.safe_load(path.read_text())
        assert workflow["permissions"] == {"contents": "read"}, path.name
        for name, job in workflow["jobs"].items():
            if "uses" in job:  # a reusable workflow's jobs carry their own timeouts (checked in its file)
                continue
            assert isinstance(job.get("timeout-minutes"), int), f"{path.name}: job {name} has no timeout-minutes"


def test_deploy_uses_oidc_and_a_guarded_environment():
    import yaml

    deploy = yaml.safe_load((ROOT / ".github" / "workflows" / "deploy.yml").read_text())
    job = deploy["jobs"]["deploy"]
    assert job["environment"] == "production"
    assert job["needs"] == "ci" and deploy["jobs"]["ci"]["uses"].endswith("/ci.yml")  # tests pass first
    assert job["if"] == "github.ref == 'refs/heads/main'"
    names = [s.get("name", s.get("uses", "")) for s in job["steps"]]
    install = next(i for i, n in enumerate(names) if n.startswith("install"))
    assert install < next(i for i, n in enumerate(names) if "configure-aws-credentials" in n)
    assert job["permissions"]["id-token"] == "write"
    creds = next(s for s in job["steps"] if "configure-aws-credentials" in s.get("uses", ""))
    assert "role-to-assume" in creds["with"]
    assert not {"aws-access-key-id", "aws-secret-access-key"} & set(creds["with"])
    assert deploy[True]["push"]["branches"] == ["main"]  # YAML 1.1 reads the key `on` as true


def test_ci_workflow_runs_the_same_entry_point_as_ci():
    assert "run: .ci/run" in CI.read_text()
    assert "make test" in (ROOT / ".ci" / "run").read_text()


# --- shell, pre-commit ------------------------------------------------------------------------------------
def test_shell_scripts_and_pre_commit_config_pass():
    assert checks.shellcheck([ROOT / ".ci" / "run"]).ok
    result = checks.pre_commit_config(ROOT / ".pre-commit-config.yaml")
    assert result.ok, result.output


def test_shellcheck_fails_on_a_broken_script(tmp_path):
    bad = broken(tmp_path, ROOT / ".ci" / "run", "\nmake test\n", "\nrm -rf $1/build\nmake test\n", "run")
    result = checks.shellcheck([bad])
    assert not result.ok
    assert "SC2086" in result.output


def test_pre_commit_config_fails_without_repos(tmp_path):
    result = checks.pre_commit_config(broken(tmp_path, ROOT / ".pre-commit-config.yaml", "repos:", "repositories:"))
    assert not result.ok


def test_pre_commit_hooks_are_local_and_need_no_network():
    import yaml

    config = yaml.safe_load((ROOT / ".pre-commit-config.yaml").read_text())
    assert [repo["repo"] for repo in config["repos"]] == ["local"]
    assert all(hook["language"] == "system" for hook in config["repos"][0]["hooks"])


# --- samconfig.toml ---------------------------------------------------------------------------------------
def test_samconfig_passes_and_points_at_synthesized_templates():
    result = checks.samconfig_keys(SAMCONFIG)
    assert result.ok, result.output
    config = tomllib.loads(SAMCONFIG.read_text())
    for command in ("validate", "local_invoke", "local_start_api"):
        assert config["default"][command]["parameters"]["template_file"] == "cdk.out/aws/DiabetesRisk.template.json"
    assert config["localstack"]["validate"]["parameters"]["template_file"] == "cdk.out/local/DiabetesRisk.template.json"
    assert "deploy" not in config["default"]  # deploys go through cdk deploy


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("lint = true", "lnit = true", "'lnit': not an option of sam validate"),
        ("[default.local_invoke.parameters]", "[default.local_invokee.parameters]", "no command 'local_invokee'"),
        ("version = 0.1", "version = 1.0", "version must be 0.1"),
        ("warm_containers", "warm_container", "'warm_container'"),
        ("[default.validate.parameters]", "[default.validate.params]", "only a 'parameters' table"),
        ("version = 0.1", "version = [", "not TOML"),
    ],
    ids=["typo-key", "unknown-command", "version", "singular-key", "section", "not-toml"],
)
def test_samconfig_check_fails_on_what_sam_would_silently_ignore(tmp_path, old, new, message):
    result = checks.samconfig_keys(broken(tmp_path, SAMCONFIG, old, new))
    assert not result.ok
    assert message in result.output


def test_sam_allowlist_matches_the_installed_sam_and_detects_staleness(tmp_path):
    result = checks.sam_allowlist_current()
    assert result.ok, result.output
    stale = json.loads(checks.SAM_ALLOWLIST.read_text())
    stale["commands"]["validate"].remove("lint")
    path = tmp_path / "sam_allowlist.json"
    path.write_text(json.dumps(stale))
    result = checks.sam_allowlist_current(path)
    assert not result.ok
    assert "stale" in result.output


# --- CloudFormation templates -----------------------------------------------------------------------------
MINIMAL_TEMPLATE = {
    "AWSTemplateFormatVersion": "2010-09-09",
    "Resources": {
        "Queue": {"Type": "AWS::SQS::Queue", "Properties": {"VisibilityTimeout": 60}},
    },
}


def _template(tmp_path: Path, name: str, **resources) -> Path:
    template = json.loads(json.dumps(MINIMAL_TEMPLATE))
    template["Resources"].update(resources)
    path = tmp_path / name
    path.write_text(json.dumps(template))
    return path


def test_cfn_lint_passes_a_clean_template_and_fails_on_an_error(tmp_path):
    assert checks.cfn_lint([_template(tmp_path, "ok.json")]).ok
    bad = _template(tmp_path, "bad.json", Fn={"Type": "AWS::Lambda::Function", "Properties": {"Runtime": "python2.0"}})
    result = checks.cfn_lint([bad])
    assert not result.ok
    assert re.search(r":E\d{4}:", result.output), result.output  # an error rule (missing Role/Code, bad runtime)


def test_cfn_lint_only_warns_on_warnings(tmp_path):
    """Warnings are shown but do not fail (CDK-generated patterns); errors do (the test above)."""
    warn = _template(
        tmp_path,
        "warn.json",
        Bucket={"Type": "AWS::S3::Bucket", "Properties": {"AccessControl": "Private"}},
    )
    result = checks.cfn_lint([warn])
    assert result.ok
    assert "W3045" in result.output


def test_sam_validate_reads_samconfig_environments(tmp_path):
    """SAM itself parses samconfig.toml here, in both environments; a file it cannot read fails the check."""
    ok = _template(tmp_path, "ok.json")
    assert checks.sam_validate(ok, "default", SAMCONFIG).ok
    assert checks.sam_validate(ok, "localstack", SAMCONFIG).ok
    bad = broken(tmp_path, SAMCONFIG, "[localstack.validate.parameters]", "[localstack.validate.parameters")
    result = checks.sam_validate(ok, "localstack", bad)
    assert not result.ok
    assert "Unexpected character" in result.output


def test_sam_validate_lint_fails_on_any_match(tmp_path):
    bad = _template(
        tmp_path, "bad.json", Bucket={"Type": "AWS::S3::Bucket", "Properties": {"AccessControl": "Private"}}
    )
    result = checks.sam_validate(bad)
    assert not result.ok
    assert "W3045" in result.output
    assert checks.sam_validate(_template(tmp_path, "ok.json")).ok


def test_zizmor_runs_the_pedantic_audits(tmp_path):
    """An elevated permission without a comment saying why is only flagged by the pedantic persona."""
    deploy = ROOT / ".github" / "workflows" / "deploy.yml"
    text = deploy.read_text()
    comment = text[text.index("id-token: write") + len("id-token: write") :].split("\n", 1)[0]
    assert comment.strip().startswith("#")
    result = checks.zizmor([broken(tmp_path, deploy, "id-token: write" + comment, "id-token: write")])
    assert not result.ok
    assert "undocumented-permissions" in result.output


# --- the runner ---------------------------------------------------------------------------------------------
def test_runner_covers_every_workflow_and_dockerfile():
    from config_checks import __main__ as runner

    on_disk = {p for p in (ROOT / ".github" / "workflows").iterdir() if p.suffix in (".yml", ".yaml")}
    assert on_disk and set(runner.WORKFLOWS) == on_disk
    import subprocess

    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    dockerfiles = {ROOT / name for name in tracked.splitlines() if name.endswith("Dockerfile")}
    assert set(runner.DOCKERFILES) == dockerfiles


def test_runner_exits_1_when_a_check_fails_and_names_it(tmp_path, monkeypatch, capsys):
    from config_checks import __main__ as runner

    bad = broken(tmp_path, SAMCONFIG, "lint = true", "lnit = true")
    monkeypatch.setitem(runner.CHECKS, "samconfig", lambda: checks.samconfig_keys(bad))
    assert runner.main(["samconfig"]) == 1
    out = capsys.readouterr().out
    assert "FAIL samconfig" in out and "lnit" in out and "0 passed, 1 failed" in out
    assert runner.main(["compose-policy", "shellcheck"]) == 0


def test_runner_reports_a_missing_tool_as_a_failure(monkeypatch, capsys):
    from config_checks import __main__ as runner

    def missing():
        raise checks.ToolMissing("hadolint not found: run `make install`")

    monkeypatch.setitem(runner.CHECKS, "hadolint", missing)
    assert runner.main(["hadolint"]) == 1
    assert "make install" in capsys.readouterr().out


def test_cdk_nag_errors_are_found_on_a_violating_stack(tmp_path):
    """The cdk-nag check's reader sees an error in a stack that breaks a rule (a bucket without SSL enforced),
    and none in one that does not."""
    import aws_cdk as cdk
    from aws_cdk import aws_s3 as s3
    from cdk_nag import AwsSolutionsChecks

    from config_checks.synth import nag_errors

    def synth(name: str, **bucket) -> Path:
        app = cdk.App(outdir=str(tmp_path / name))
        stack = cdk.Stack(app, name)
        s3.Bucket(stack, "Data", **bucket)
        cdk.Aspects.of(app).add(AwsSolutionsChecks())
        return Path(app.synth().directory)

    errors = nag_errors(synth("Bad"))
    assert any("AwsSolutions-S10" in e for e in errors), errors
    assert not any("AwsSolutions-S10" in e for e in nag_errors(synth("Good", enforce_ssl=True)))
