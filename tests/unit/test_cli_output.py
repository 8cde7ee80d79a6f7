"""CLI output that must survive a pipe (CI logs, `make demo > log`) and name the URLs that work."""

from __future__ import annotations

import io
import json

from rich.console import Console
from rich.table import Table
from typer.testing import CliRunner

from diabetes_risk.cli import app
from diabetes_risk.cli.common import print_table


def _table() -> Table:
    table = Table("execution", "status", "failed step: cause", title="recent runs")
    table.add_row("train-" + "x" * 60, "[red]FAILED[/red]", "Validate: ValidationError: " + "glucose out of range " * 4)
    table.add_row("train-2", "[green]SUCCEEDED[/green]", "")
    return table


def test_piped_tables_are_plain_lines_with_nothing_cut():
    out = io.StringIO()
    print_table(_table(), Console(file=out, force_terminal=False, width=80))
    lines = out.getvalue().splitlines()
    assert lines[0] == "recent runs"
    assert lines[1] == "execution\tstatus\tfailed step: cause"
    assert lines[2].split("\t")[0] == "train-" + "x" * 60  # longer than 80 columns allow, kept whole
    assert lines[2].split("\t")[1] == "FAILED"  # markup stripped
    assert not any(ch in out.getvalue() for ch in "┃│━─")  # no box drawing


def test_terminal_tables_keep_their_boxes():
    out = io.StringIO()
    print_table(_table(), Console(file=out, force_terminal=True, width=120))
    assert "┃" in out.getvalue() or "│" in out.getvalue()


def test_deploy_prints_the_local_api_url_that_resolves(tmp_path, monkeypatch):
    from diabetes_risk import deploy
    from localcloud import runtime

    monkeypatch.setenv("DR_STATE_DIR", str(tmp_path))
    monkeypatch.setattr(runtime, "is_up", lambda settings: True)
    outputs = {
        "ApiId": "abc123",
        "ApiUrl": "https://abc123.execute-api.localhost.localstack.cloud:4566/prod/",
        "ServingApiEndpointBB85FF1E": "https://abc123.execute-api.127.0.0.1:4566/prod/",
    }
    monkeypatch.setattr(
        deploy,
        "deploy_local",
        lambda cloud, on_line, bootstrap=False, fresh_synth=False: {"outputs": outputs, "timings": {}},
    )
    result = CliRunner().invoke(app, ["deploy"])
    assert result.exit_code == 0, result.output
    assert "ApiUrl: http://127.0.0.1:4566/_aws/execute-api/abc123/prod/" in result.output
    assert "ServingApiEndpointBB85FF1E: http://127.0.0.1:4566/_aws/execute-api/abc123/prod/" in result.output
    assert "execute-api.localhost" not in result.output
    assert json.dumps(outputs)  # the stack's own outputs are untouched


def test_deploy_fresh_synth_is_passed_on_and_refused_where_it_means_nothing(tmp_path, monkeypatch):
    from diabetes_risk import deploy
    from localcloud import runtime

    monkeypatch.setenv("DR_STATE_DIR", str(tmp_path))
    monkeypatch.setattr(runtime, "is_up", lambda settings: True)
    asked = []

    def fake(cloud, on_line, **options):
        asked.append(options)
        return {
            "outputs": {},
            "timings": {"deploy_s": 9.3},
            "assembly": "synthesized" if options["fresh_synth"] else "reused",
        }

    monkeypatch.setattr(deploy, "deploy_local", fake)
    result = CliRunner().invoke(app, ["deploy"])
    assert result.exit_code == 0 and "no file changed since the last synth" in result.output
    result = CliRunner().invoke(app, ["deploy", "--fresh-synth"])
    assert result.exit_code == 0 and asked[-1]["fresh_synth"] is True and "no file changed" not in result.output
    for args in (["deploy", "--fresh-synth", "--hotswap"], ["deploy", "--fresh-synth", "--target", "aws"]):
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 2 and "--fresh-synth" in result.output, args
    assert len(asked) == 2


def test_console_on_a_taken_port_says_so(tmp_path, monkeypatch):
    import socket

    monkeypatch.setenv("DR_STATE_DIR", str(tmp_path))
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        result = CliRunner().invoke(app, ["console", "--port", str(port)])
    assert result.exit_code == 1
    assert f"port {port} is in use" in result.output


def test_console_for_aws_without_a_region_says_what_to_set(tmp_path, monkeypatch):
    from localcloud import runtime

    for name in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setattr(runtime, "port_in_use", lambda host, port: False)
    result = CliRunner().invoke(app, ["console", "--target", "aws"])
    assert result.exit_code == 2
    assert "AWS_REGION" in result.output


def test_piped_cells_that_look_like_markup_are_kept():
    table = Table("cause")
    table.add_row("KeyError: [/glucose] missing")
    out = io.StringIO()
    print_table(table, Console(file=out, force_terminal=False))
    assert out.getvalue().splitlines()[1] == "KeyError: [/glucose] missing"
