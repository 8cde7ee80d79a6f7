"""Local cloud management without starting anything: settings, port checks, pid records, CLI errors."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from diabetes_risk.cli import app
from localcloud import install, runtime
from localcloud.settings import LocalCloudSettings
from tests.unit.fresh_python import in_a_fresh_python

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def settings(tmp_path, monkeypatch) -> LocalCloudSettings:
    monkeypatch.setenv("DR_STATE_DIR", str(tmp_path))
    return LocalCloudSettings()


@pytest.fixture
def busy_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def test_settings_refuse_non_loopback_host():
    with pytest.raises(ValidationError, match="loopback"):
        LocalCloudSettings(host="0.0.0.0")


def test_settings_from_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("DR_LOCALSTACK_PORT", "4600")
    monkeypatch.setenv("DR_STATE_DIR", str(tmp_path))
    s = LocalCloudSettings()
    assert s.localstack_url == "http://127.0.0.1:4600"
    assert s.run_dir == tmp_path / "run" / "default"
    env = s.client_env()
    assert env["AWS_ENDPOINT_URL"] == env["AWS_ENDPOINT_URL_S3"] == "http://127.0.0.1:4600"


def test_port_in_use_detects_a_listener(busy_port):
    assert runtime.port_in_use("127.0.0.1", busy_port)


def test_up_names_the_taken_port_and_how_to_change_it(settings, busy_port):
    settings.localstack_port = busy_port
    with pytest.raises(runtime.LocalCloudError) as info:
        runtime.up(settings)
    message = str(info.value)
    assert f"127.0.0.1:{busy_port} is already in use" in message
    assert "DR_LOCALSTACK_PORT" in message
    assert f"pid {psutil.Process().pid}" in message  # who holds it
    assert not settings.pids_file.exists()  # nothing was started


def _free_ports(settings: LocalCloudSettings) -> None:
    """Ports nobody uses, so a local cloud running on the defaults does not decide the outcome."""
    from dr_host_executor.process import free_port

    for name in (
        "localstack_port",
        "mlflow_port",
        "prometheus_port",
        "alertmanager_port",
        "alerts_port",
        "console_port",
    ):
        setattr(settings, name, free_port())


def test_a_taken_prometheus_port_names_its_own_variable(settings, busy_port):
    _free_ports(settings)
    settings.prometheus_port = busy_port
    with pytest.raises(runtime.LocalCloudError, match="DR_PROMETHEUS_PORT or --prometheus-port"):
        runtime.up(settings)
    assert not settings.pids_file.exists()


def test_missing_prometheus_says_how_to_install_it(settings):
    _free_ports(settings)
    settings.prometheus_bin = None
    with pytest.raises(runtime.LocalCloudError, match="apt-get install prometheus prometheus-alertmanager"):
        runtime.up(settings)
    assert not settings.pids_file.exists()


def test_status_when_nothing_runs(settings):
    states = runtime.status(settings)
    assert [s.name for s in states] == [
        "localstack",
        "mlflow",
        "alert_receiver",
        "alertmanager",
        "prometheus",
        "console",
    ]
    assert not any(s.running or s.healthy for s in states)
    assert runtime.down(settings) == []


def test_down_stops_recorded_process_group_and_ignores_reused_pids(settings):
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)
    started = psutil.Process(proc.pid).create_time()
    settings.run_dir.mkdir(parents=True)
    settings.pids_file.write_text(
        json.dumps(
            {
                "localstack": {"pid": proc.pid, "started": started, "log": "x"},
                # a pid whose start time does not match: must not be touched
                "mlflow": {"pid": psutil.Process().pid, "started": started - 1000, "log": "y"},
            }
        )
    )
    assert runtime.down(settings) == ["localstack"]
    assert proc.wait(5) is not None
    assert not settings.pids_file.exists()


def test_install_is_not_done_for_an_empty_state_dir(settings):
    assert not install.is_installed(settings)
    assert len(install.fingerprint()) == 64


runner = CliRunner()


def test_cli_help_lists_local_commands():
    result = runner.invoke(app, ["local", "--help"])
    assert result.exit_code == 0
    for command in ("up", "down", "status", "check", "install", "env"):
        assert command in result.output


def test_cli_bad_port_is_a_clear_error(settings):
    result = runner.invoke(app, ["local", "up", "--localstack-port", "70000"])
    assert result.exit_code == 2
    assert "localstack_port" in result.output and "65535" in result.output


def test_cli_port_taken_exit_1_with_message(settings, busy_port):
    result = runner.invoke(app, ["local", "up", "--mlflow-port", str(busy_port), "--localstack-port", str(busy_port)])
    assert result.exit_code == 1
    assert "already in use" in result.output


def test_cli_status_exits_1_when_down(settings):
    result = runner.invoke(app, ["local", "status", "--json"])
    assert result.exit_code == 1
    assert json.loads(result.output)[0]["healthy"] is False


def test_cli_check_refuses_when_down(settings):
    result = runner.invoke(app, ["local", "check"])
    assert result.exit_code == 1
    assert "not running" in result.output


def test_cli_env_prints_exports(settings):
    result = runner.invoke(app, ["local", "env"])
    assert "export AWS_ENDPOINT_URL=http://127.0.0.1:4566" in result.output


def test_cli_train_bad_fault_spec_is_explained(settings):
    result = runner.invoke(app, ["train", "--inject-fault", "teach:sometimes"])
    assert result.exit_code == 2
    assert "STEP[:once|always]" in result.output


def test_cli_deploy_unknown_target(settings):
    result = runner.invoke(app, ["deploy", "--target", "gcp"])
    assert result.exit_code == 2 and "unknown target 'gcp'" in result.output


def test_cli_deploy_aws_needs_mlflow(settings, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    result = runner.invoke(app, ["deploy", "--target", "aws"])
    assert result.exit_code == 2 and "MLflow tracking server" in result.output


def test_cli_runs_and_train_need_the_local_cloud(settings):
    for args in (["runs"], ["train"], ["deploy"]):
        result = runner.invoke(app, args)
        assert result.exit_code == 1, args
        assert "local cloud is not running" in result.output


def test_cli_train_unknown_family_is_named(settings):
    result = runner.invoke(app, ["train", "--in-process", "--families", "xgboost,svm"])
    assert result.exit_code == 2
    assert "unknown model families: svm" in result.output


def test_cli_train_checks_the_families_without_importing_the_model_libraries(tmp_path):
    """The state machine trains; the CLI only checks the family names (scikit-learn and XGBoost: ≈ 2 s of imports)."""
    code = (
        "import sys; from typer.testing import CliRunner; from diabetes_risk.cli import app;"
        "result = CliRunner().invoke(app, ['train', '--families', 'xgboost']);"
        "assert result.exit_code == 1 and 'local cloud is not running' in result.output, result.output;"
        "print(sorted({'sklearn', 'xgboost'} & {m.split('.')[0] for m in sys.modules}))"
    )
    assert in_a_fresh_python(code, DR_STATE_DIR=str(tmp_path), HOME=str(tmp_path)) == "[]"


def test_cli_train_needs_the_local_cloud(settings):
    result = runner.invoke(app, ["train", "--in-process"])
    assert result.exit_code == 1
    assert "local cloud is not running" in result.output


# --- services run by docker compose (DR_EXTERNAL) ---------------------------------------------------------
@pytest.fixture
def healthy_server():
    """A loopback HTTP server answering 200 to every GET (a JSON list of one alert): stands in for compose-run
    services' health URLs and the alert inbox."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Ok(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b'[{"alertname": "HighLatency", "status": "firing"}]')

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Ok)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()


def test_external_services_count_as_up_by_health_alone(tmp_path, monkeypatch, healthy_server):
    monkeypatch.setenv("DR_STATE_DIR", str(tmp_path))
    ports = {"localstack_port": healthy_server, "mlflow_port": healthy_server}
    assert runtime.is_up(LocalCloudSettings(**ports)) is False  # no pids: not ours, so not up
    assert runtime.is_up(LocalCloudSettings(external=True, **ports)) is True
    with socket.socket() as sock:  # an external service that does not answer is down
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    assert runtime.is_up(LocalCloudSettings(external=True, localstack_port=closed, mlflow_port=healthy_server)) is False


@pytest.mark.parametrize("external", [True, False])
def test_is_up_asks_only_localstack_and_mlflow(tmp_path, monkeypatch, healthy_server, external):
    """Every command checks the cloud first: the monitoring services and the console are `local status`'s to ask,
    and so is the memory of LocalStack's process tree (every Lambda environment's). Each health check cost a TLS
    context, ≈ 50 ms on the slower machine, before the opener was kept."""
    monkeypatch.setenv("DR_STATE_DIR", str(tmp_path))
    asked = []
    real = runtime.http_ok
    monkeypatch.setattr(runtime, "http_ok", lambda url, timeout=2.0: asked.append(url) or real(url, timeout))
    monkeypatch.setattr(runtime, "_tree_rss_mb", lambda proc: pytest.fail("is_up measured memory"))
    cloud = LocalCloudSettings(external=external, localstack_port=healthy_server, mlflow_port=healthy_server)
    if not external:  # services of ours: recorded pids (this process stands in for each)
        me = psutil.Process()
        cloud.run_dir.mkdir(parents=True)
        record = {"pid": me.pid, "started": me.create_time(), "log": "x"}
        cloud.pids_file.write_text(json.dumps({name: record for name in runtime.health_urls(cloud)}))
    assert runtime.is_up(cloud) is True
    assert sorted(asked) == sorted(runtime.health_urls(cloud)[name] for name in runtime.CORE)


@pytest.fixture
def fresh_health_opener():
    runtime._health_opener.cache_clear()
    yield
    runtime._health_opener.cache_clear()


def test_health_checks_build_no_tls_context_for_plain_http(monkeypatch, healthy_server, fresh_health_opener):
    import ssl

    built = []
    real = ssl._create_default_https_context  # what urllib's HTTPS handler builds its context with
    monkeypatch.setattr(ssl, "_create_default_https_context", lambda *a, **k: built.append(1) or real(*a, **k))
    assert runtime.http_ok(f"http://127.0.0.1:{healthy_server}/health")
    assert runtime.http_ok(f"http://127.0.0.1:{healthy_server}/health")
    assert built == []
    from dr_host_executor.process import free_port

    assert runtime.http_ok(f"http://127.0.0.1:{free_port()}/health") is False  # nothing listens there
    assert runtime.http_ok("ftp://127.0.0.1/health") is False  # a scheme it cannot open is not healthy


def test_cli_local_up_and_down_refuse_external_services(settings, monkeypatch):
    monkeypatch.setenv("DR_EXTERNAL", "true")
    for command in ("up", "down", "check"):
        result = runner.invoke(app, ["local", command])
        assert result.exit_code == 2, command
        assert "docker compose runs the services" in result.output


def test_external_status_reports_health_without_pids(tmp_path, monkeypatch, healthy_server):
    monkeypatch.setenv("DR_STATE_DIR", str(tmp_path))
    states = runtime.status(
        LocalCloudSettings(external=True, localstack_port=healthy_server, mlflow_port=healthy_server)
    )
    by_name = {s.name: s for s in states}
    assert by_name["localstack"].healthy and by_name["mlflow"].healthy
    assert by_name["localstack"].pid is None
    assert by_name["prometheus"].url.endswith("/-/ready")


def test_external_settings_default_to_the_compose_service_addresses(tmp_path, monkeypatch):
    monkeypatch.setenv("DR_STATE_DIR", str(tmp_path))
    plain = LocalCloudSettings()
    assert plain.functions_mlflow_url is None and plain.functions_s3_endpoint is None
    compose = LocalCloudSettings(external=True, localstack_port=4600)
    assert compose.functions_mlflow_url == "http://mlflow:5000"
    assert compose.functions_remote_write_url == "http://prometheus:9090/api/v1/write"
    assert compose.functions_s3_endpoint == "http://127.0.0.1:4566"  # inside the container, not the host's 4600
    monkeypatch.setenv("DR_FUNCTIONS_MLFLOW_URL", "http://tracking:5000")
    assert LocalCloudSettings(external=True).functions_mlflow_url == "http://tracking:5000"


def test_cli_alerts_reads_the_compose_inbox_over_http(tmp_path, monkeypatch, healthy_server):
    from diabetes_risk.cli import monitoring as monitoring_cli

    monkeypatch.setenv("DR_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("DR_EXTERNAL", "true")
    monkeypatch.setenv("DR_ALERTS_PORT", str(healthy_server))
    monkeypatch.setattr(monitoring_cli, "alerts", lambda url: [])
    result = runner.invoke(app, ["alerts", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["received"] == [{"alertname": "HighLatency", "status": "firing"}]


def test_cli_metrics_waits_for_an_answer_only_when_asked_and_only_as_long_as_asked(settings, monkeypatch):
    from diabetes_risk.cli import monitoring as monitoring_cli

    answers = [[], [], [{"metric": {"service": "predict"}, "value": [0, "3"]}]]
    asked = []
    monkeypatch.setattr(monitoring_cli, "query", lambda url, expr: asked.append(expr) or answers[len(asked) - 1])
    result = runner.invoke(app, ["metrics", "up", "--wait", "5"])
    assert result.exit_code == 0 and "service=predict" in result.output and len(asked) == 3

    asked.clear()
    monkeypatch.setattr(monitoring_cli, "query", lambda url, expr: asked.append(expr) or [])
    result = runner.invoke(app, ["metrics", "up"])  # no --wait: one question
    assert result.exit_code == 0 and "no data" in result.output and len(asked) == 1
    result = runner.invoke(app, ["metrics", "up", "--wait", "0.6"])
    assert result.exit_code == 0 and "no data" in result.output and 2 <= len(asked) - 1 <= 5
    assert runner.invoke(app, ["metrics", "up", "--wait", "-1"]).exit_code == 2


def test_deploy_local_gives_functions_the_compose_addresses(settings, monkeypatch):
    from diabetes_risk import deploy

    seen = []

    def fake_run(cmd, env, log, on_line):
        seen.append(cmd)
        out = cmd[cmd.index("--outputs-file") + 1]
        settings.run_dir.mkdir(parents=True, exist_ok=True)
        with open(out, "w") as fh:
            json.dump({"DiabetesRisk": {"ApiId": "x"}}, fh)

    monkeypatch.setattr(deploy, "_run", fake_run)
    monkeypatch.setattr(deploy, "prepare_assets_target", lambda cloud: seen.append("assets") or False)
    monkeypatch.setattr(deploy, "ensure_issuer", lambda cloud: seen.append("issuer") or False)
    deploy.deploy_local(settings, lambda line: None)
    assert seen[:2] == ["assets", "issuer"]  # the assets' bucket and the token issuer exist before the stack
    assert f"mlflow_uri={settings.mlflow_url}" in seen[-1]  # default: the host's addresses
    assert f"s3_endpoint={settings.localstack_url}" in seen[-1]
    monkeypatch.setenv("DR_EXTERNAL", "true")
    monkeypatch.setenv("DR_LOCALSTACK_PORT", "4600")
    deploy.deploy_local(LocalCloudSettings(), lambda line: None)
    assert "mlflow_uri=http://mlflow:5000" in seen[-1]
    assert "remote_write_url=http://prometheus:9090/api/v1/write" in seen[-1]
    assert "s3_endpoint=http://127.0.0.1:4566" in seen[-1]


def test_deploy_local_reuses_its_assembly_until_a_file_or_the_context_changes(settings, monkeypatch, tmp_path):
    from diabetes_risk import deploy

    root = tmp_path / "project"
    (root / "functions" / "__pycache__").mkdir(parents=True)
    (root / "functions" / "app.py").write_text("A = 1\n")
    monkeypatch.setattr(deploy, "PROJECT_ROOT", root)
    monkeypatch.setattr(deploy, "prepare_assets_target", lambda cloud: False)
    monkeypatch.setattr(deploy, "ensure_issuer", lambda cloud: False)
    seen = []

    def fake_run(cmd, env, log, on_line):
        seen.append(cmd)
        if "--output" in cmd:  # a synth: CDK writes the assembly there
            out = Path(cmd[cmd.index("--output") + 1])
            out.mkdir(parents=True, exist_ok=True)
            (out / "DiabetesRisk.template.json").write_text("{}")
            (out / "manifest.json").write_text("{}")
        Path(cmd[cmd.index("--outputs-file") + 1]).write_text(json.dumps({"DiabetesRisk": {}}))

    def failing(cmd, env, log, on_line):
        raise deploy.DeployError("cdklocal deploy failed (exit 1)")

    def kind(**kw) -> str:
        return deploy.deploy_local(settings, lambda line: None, **kw)["assembly"]

    monkeypatch.setattr(deploy, "_run", fake_run)
    assert kind() == "synthesized" and "target=local" in seen[-1]
    assert kind() == "reused"
    assert seen[-1][seen[-1].index("--app") + 1] == str(settings.run_dir / "cdk.out") and "-c" not in seen[-1]
    (root / "functions" / "__pycache__" / "app.cpython-313.pyc").write_bytes(b"\0")  # bytecode is not a source
    assert kind() == "reused"
    (root / "functions" / "app.py").write_text("A = 2\n")  # a source changed
    assert kind() == "synthesized" and kind() == "reused"
    assert kind(fresh_synth=True) == "synthesized"
    monkeypatch.setattr(deploy, "_run", failing)  # a synth that fails leaves no key behind
    (root / "functions" / "new.py").write_text("")
    with pytest.raises(deploy.DeployError):
        kind()
    (root / "functions" / "new.py").unlink()
    monkeypatch.setattr(deploy, "_run", fake_run)
    assert kind() == "synthesized" and kind() == "reused"
    monkeypatch.setattr(deploy, "_run", failing)  # a failed deploy of the kept assembly: the next one synthesizes
    with pytest.raises(deploy.DeployError, match="next deploy synthesizes afresh"):
        kind()
    monkeypatch.setattr(deploy, "_run", fake_run)
    assert kind() == "synthesized"
    (settings.run_dir / "cdk.out" / "manifest.json").unlink()  # a damaged assembly is never deployed again
    assert kind() == "synthesized"
    (root / "functions" / ".#app.py").symlink_to("nobody@host.1234")  # an editor's lock: a link to nowhere
    assert kind() == "synthesized" and kind() == "reused"
    monkeypatch.setenv("DR_EXTERNAL", "true")  # other addresses for the functions: other context
    assert deploy.deploy_local(LocalCloudSettings(), lambda line: None)["assembly"] == "synthesized"


def test_synth_only_keeps_an_assembly_the_next_deploy_uses_without_the_cloud(settings, monkeypatch, tmp_path):
    from diabetes_risk import deploy

    root = tmp_path / "project"
    (root / "functions").mkdir(parents=True)
    (root / "functions" / "app.py").write_text("A = 1\n")
    monkeypatch.setattr(deploy, "PROJECT_ROOT", root)
    seen = []

    def no_cloud(cloud):
        raise AssertionError("a synth alone asks the local cloud nothing")

    def fake_run(cmd, env, log, on_line):
        seen.append(cmd)
        if "synth" in cmd:  # CDK writes the assembly where --output says
            out = Path(cmd[cmd.index("--output") + 1])
            out.mkdir(parents=True, exist_ok=True)
            (out / "DiabetesRisk.template.json").write_text("{}")
            (out / "manifest.json").write_text("{}")
        else:
            Path(cmd[cmd.index("--outputs-file") + 1]).write_text(json.dumps({"DiabetesRisk": {}}))

    monkeypatch.setattr(deploy, "_run", fake_run)
    monkeypatch.setattr(deploy, "prepare_assets_target", no_cloud)
    monkeypatch.setattr(deploy, "ensure_issuer", no_cloud)
    first = deploy.synth_local(settings, lambda line: None)
    assert first["assembly"] == "synthesized" and seen[-1][1] == "synth"
    assert seen[-1][seen[-1].index("--output") + 1] == str(settings.run_dir / "cdk.out")
    assert "target=local" in seen[-1] and f"mlflow_uri={settings.mlflow_url}" in seen[-1]  # a deploy's context
    assert deploy.synth_local(settings, lambda line: None)["assembly"] == "kept" and len(seen) == 1
    assert deploy.synth_local(settings, lambda line: None, fresh_synth=True)["assembly"] == "synthesized"

    monkeypatch.setattr(deploy, "prepare_assets_target", lambda cloud: False)
    monkeypatch.setattr(deploy, "ensure_issuer", lambda cloud: False)
    assert deploy.deploy_local(settings, lambda line: None)["assembly"] == "reused"  # the synth-only's assembly
    assert "--app" in seen[-1] and "-c" not in seen[-1]

    def edits_while_synthesizing(cmd, env, log, on_line):
        fake_run(cmd, env, log, on_line)
        (root / "functions" / "app.py").write_text("A = 3\n")  # saved in an editor mid-synth

    (root / "functions" / "app.py").write_text("A = 2\n")
    monkeypatch.setattr(deploy, "_run", edits_while_synthesizing)
    assert deploy.synth_local(settings, lambda line: None)["assembly"] == "synthesized, not kept"
    monkeypatch.setattr(deploy, "_run", fake_run)
    assert deploy.deploy_local(settings, lambda line: None)["assembly"] == "synthesized"  # no key: synthesized

    def failing(cmd, env, log, on_line):
        raise deploy.DeployError("cdklocal synth failed (exit 1)")

    monkeypatch.setattr(deploy, "_run", failing)  # a synth that fails part-way, on an unchanged tree
    with pytest.raises(deploy.DeployError):
        deploy.synth_local(settings, lambda line: None, fresh_synth=True)
    monkeypatch.setattr(deploy, "_run", fake_run)  # the key no longer vouches for what it left: the deploy synthesizes
    assert deploy.deploy_local(settings, lambda line: None)["assembly"] == "synthesized"


def test_cli_synth_only_goes_alone_and_reports_what_it_did(settings, monkeypatch):
    from diabetes_risk import deploy

    asked = []
    outcome = {"assembly": "synthesized", "key": "ab" * 32, "synth_s": 12.3}
    monkeypatch.setattr(
        deploy, "synth_local", lambda cloud, on_line, fresh_synth=False: asked.append(fresh_synth) or outcome
    )
    result = runner.invoke(app, ["deploy", "--synth-only"])
    assert result.exit_code == 0 and "synthesized the app in 12.3 s" in result.output
    assert runner.invoke(app, ["deploy", "--synth-only", "--fresh-synth"]).exit_code == 0 and asked == [False, True]
    outcome["assembly"] = "synthesized, not kept"
    result = runner.invoke(app, ["deploy", "--synth-only"])
    assert result.exit_code == 0 and "not kept" in result.output and "next deploy synthesizes again" in result.output
    outcome["assembly"] = "kept"
    result = runner.invoke(app, ["deploy", "--synth-only"])
    assert result.exit_code == 0 and "unchanged since its last synth (key abababababab)" in result.output
    for extra in (["--hotswap"], ["--bootstrap"], ["--function", "Predict"], ["--target", "aws"]):
        result = runner.invoke(app, ["deploy", "--synth-only", *extra])
        assert result.exit_code == 2 and "--synth-only is for the local target" in result.output, extra

    def failing(cloud, on_line, fresh_synth=False):
        raise deploy.DeployError("cdklocal synth failed (exit 1); log x:\nValidationError: bad construct")

    monkeypatch.setattr(deploy, "synth_local", failing)
    result = runner.invoke(app, ["deploy", "--synth-only"])
    assert result.exit_code == 1 and "synth failed" in result.output and "bad construct" in result.output


def test_the_synth_key_sees_linked_folders_and_never_hashes_the_state_folder(tmp_path):
    from diabetes_risk.deploy import synth_key

    root = tmp_path / "project"
    (root / "infra").mkdir(parents=True)
    (tmp_path / "shared-a").mkdir()
    (tmp_path / "shared-b").mkdir()
    (root / "shared").symlink_to(tmp_path / "shared-a")
    first = synth_key(["-c", "target=local"], root)
    assert first == synth_key(["-c", "target=local"], root)
    assert first != synth_key(["-c", "target=aws"], root)
    (root / "shared").unlink()
    (root / "shared").symlink_to(tmp_path / "shared-b")
    assert synth_key(["-c", "target=local"], root) != first
    state = root / "my-state"
    state.mkdir()
    before = synth_key([], root, skip=(state,))
    (state / "localstack.log").write_text("a line")  # the local cloud writing its logs
    assert synth_key([], root, skip=(state,)) == before != synth_key([], root)


def test_the_console_child_reads_this_local_cloud(tmp_path, monkeypatch):
    monkeypatch.setenv("DR_STATE_DIR", str(tmp_path))
    settings = LocalCloudSettings(host="127.0.0.2", console_port=9999, localstack_port=4600, instance="x")
    env = settings.dr_env()
    monkeypatch.delenv("DR_STATE_DIR")
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    from console.settings import ConsoleSettings

    child, console = LocalCloudSettings(), ConsoleSettings()
    assert (child.localstack_url, child.run_dir) == (settings.localstack_url, settings.run_dir)
    assert (console.host, console.port) == ("127.0.0.2", 9999)  # it listens where `up` waits for it


def test_external_status_leaves_out_the_console(tmp_path, monkeypatch, healthy_server):
    monkeypatch.setenv("DR_STATE_DIR", str(tmp_path))
    names = [s.name for s in runtime.status(LocalCloudSettings(external=True))]
    assert "console" not in names and "localstack" in names


def test_the_local_deploy_needs_only_the_staging_bucket_and_version_parameter_of_cdk_bootstrap(
    settings, aws_env, monkeypatch
):
    """Created once, directly (no CDKToolkit stack); the bucket name and parameter are the ones the synthesized
    template and its assets manifest name."""
    import boto3
    from moto import mock_aws

    from diabetes_risk import deploy

    with mock_aws():
        s3, ssm = boto3.client("s3", region_name="us-east-1"), boto3.client("ssm", region_name="us-east-1")
        monkeypatch.setattr("localcloud.smoke.clients", lambda cloud, *names: [s3, ssm])
        assert deploy.prepare_assets_target(settings) is True
        assert deploy.prepare_assets_target(settings) is False  # already there: nothing to do
        s3.head_bucket(Bucket="cdk-hnb659fds-assets-000000000000-us-east-1")
        version = ssm.get_parameter(Name="/cdk-bootstrap/hnb659fds/version")["Parameter"]["Value"]
        assert int(version) >= 6  # what the template's CheckBootstrapVersion rule requires
    template = (ROOT / "node_modules/aws-cdk/lib/api/bootstrap/bootstrap-template.yaml").read_text()
    assert f"Value: '{deploy.BOOTSTRAP_VERSION}'" in template  # the pinned CLI's own bootstrap version


def test_make_demo_synthesizes_beside_local_up_and_the_loop_bench_times_that_recipe(tmp_path, monkeypatch):
    import importlib.util

    monkeypatch.setattr(sys, "path", list(sys.path))  # the bench puts its folders first

    spec = importlib.util.spec_from_file_location("bench_loop_under_test", ROOT / "bench" / "bench_loop.py")
    bench_loop = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench_loop)
    groups = bench_loop.demo_commands()
    assert groups[0] == [["deploy", "--synth-only"], ["local", "up"]]  # side by side, as the recipe runs them
    assert [["deploy"]] in groups and groups.index([["deploy"]]) < groups.index([["train"]])
    makefile = tmp_path / "Makefile"
    makefile.write_text("demo: up ## the story\n\t@$(CLI) deploy\n\t@sleep 2; $(CLI) train\n\t@echo; $(CLI) runs\n")
    assert bench_loop.demo_commands(makefile) == [
        [["local", "up"]],
        [["deploy"]],
        [["sleep", "2"]],
        [["train"]],
        [["runs"]],
    ]
    wall, done = bench_loop._run_group([["sleep", "2"], ["sleep", "0"]], dict(os.environ))
    (_, first_s, _), (_, second_s, _) = done
    assert second_s < first_s <= wall  # each command's own end, not the end of the one listed before it
    started = time.perf_counter()
    with pytest.raises(RuntimeError, match="demo step sleep x failed"):
        bench_loop._run_group([["sleep", "x"], ["sleep", "1"]], dict(os.environ))
    assert time.perf_counter() - started >= 1.0  # raised once the other had ended, none left running


def test_cli_predict_reads_the_stacks_outputs_once(settings, monkeypatch):
    """The API's address and the token's registered clients come from one CloudFormation read (it was two)."""
    from diabetes_risk import access, deploy, predict_client

    reads = []
    outputs = {"ApiId": "abc123", "ApiClients": "clinic-demo=predict"}
    monkeypatch.setattr(runtime, "is_up", lambda cloud: True)
    monkeypatch.setattr(deploy, "stack_outputs", lambda cloud: reads.append(1) or outputs)
    monkeypatch.setattr(access, "mint_local", lambda secrets, stack, client, registered, scopes, ttl: "tok")
    sent = {}
    monkeypatch.setattr(
        predict_client, "post_predict", lambda url, body, key, token=None: sent.update(url=url, token=token) or {}
    )
    result = runner.invoke(app, ["predict", "--json", '{"glucose": 148}'])
    assert result.exit_code == 0, result.output
    assert reads == [1]
    assert "abc123" in sent["url"] and sent["token"] == "tok"
