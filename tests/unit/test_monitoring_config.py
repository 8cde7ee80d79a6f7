"""Prometheus, Alertmanager and Grafana configuration as the real tools read it: promtool, amtool, PromQL
parsing, and the committed dashboards in sync with their generator."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import promql_parser
import pytest
import yaml

from observability import config, dashboards
from observability.alert_receiver import alerts_of

PROMTOOL = shutil.which("promtool")
AMTOOL = shutil.which("amtool")


def run(cmd: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def test_the_monitoring_tools_are_installed():
    assert PROMTOOL and AMTOOL, "promtool/amtool missing: `make install` installs prometheus and alertmanager"


def test_rendered_prometheus_config_passes_promtool(tmp_path):
    path = tmp_path / "prometheus.yml"
    path.write_text(config.render_prometheus("127.0.0.1", 19090, 19093))
    proc = run([PROMTOOL, "check", "config", str(path)])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rendered = yaml.safe_load(path.read_text())
    assert rendered["storage"]["tsdb"]["out_of_order_time_window"] == "1h"
    assert rendered["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == ["127.0.0.1:19093"]


def test_committed_prometheus_config_passes_promtool(tmp_path):
    """The docker-compose file as it is (rules next to it)."""
    shutil.copytree(config.PROMETHEUS_YML.parent, tmp_path / "p")
    proc = run([PROMTOOL, "check", "config", str(tmp_path / "p" / "prometheus.yml")])
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_alert_rules_pass_promtool_check_and_their_unit_tests():
    rules = [str(p) for p in config.rule_files()]
    assert rules
    proc = run([PROMTOOL, "check", "rules", *rules])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for test_file in sorted(config.RULE_TESTS_DIR.glob("*.yml")):
        proc = run([PROMTOOL, "test", "rules", str(test_file)])
        assert proc.returncode == 0, proc.stdout + proc.stderr


def test_promtool_unit_tests_fail_when_a_rule_is_broken(tmp_path):
    """The rule tests can fail: raise a threshold so the firing case no longer fires."""
    shutil.copytree(config.PROMETHEUS_YML.parent, tmp_path / "p")
    rules = tmp_path / "p" / "rules" / "diabetes_risk.yml"
    rules.write_text(rules.read_text().replace("> 0.05", "> 5"))
    proc = run([PROMTOOL, "test", "rules", str(tmp_path / "p" / "tests" / "diabetes_risk_test.yml")])
    assert proc.returncode != 0 and "PredictionApi5xxRateHigh" in proc.stdout + proc.stderr


def test_every_alert_has_a_firing_and_a_quiet_case():
    alerts = {
        r["alert"] for p in config.rule_files() for g in yaml.safe_load(p.read_text())["groups"] for r in g["rules"]
    }
    cases: dict[str, set[bool]] = {}
    for test_file in config.RULE_TESTS_DIR.glob("*.yml"):
        for test in yaml.safe_load(test_file.read_text())["tests"]:
            for case in test.get("alert_rule_test", []):
                cases.setdefault(case["alertname"], set()).add(bool(case.get("exp_alerts")))
    assert {a for a in alerts if cases.get(a) != {True, False}} == set()


@pytest.mark.parametrize("rendered", [True, False])
def test_alertmanager_config_passes_amtool(tmp_path, rendered):
    path = tmp_path / "alertmanager.yml"
    path.write_text(config.render_alertmanager("127.0.0.1", 19095) if rendered else config.ALERTMANAGER_YML.read_text())
    proc = run([AMTOOL, "check-config", str(path)])
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_every_rule_and_panel_query_parses_as_promql():
    exprs = [
        r["expr"] for p in config.rule_files() for g in yaml.safe_load(p.read_text())["groups"] for r in g["rules"]
    ]
    exprs += [q for _, _, q in dashboards.queries()]
    assert len(exprs) > 30
    for expr in exprs:
        promql_parser.parse(expr)  # raises on a syntax error
    with pytest.raises(ValueError):
        promql_parser.parse("sum(rate(x[5m])")  # and the parser does refuse broken PromQL


def test_committed_dashboards_match_the_generator():
    committed = {p.name: p.read_text() for p in config.DASHBOARDS_DIR.glob("*.json")}
    assert committed == dashboards.rendered(), "run `python -m observability.dashboards` and commit the JSON"


def test_dashboards_are_grafana_models_on_the_provisioned_datasource():
    provisioned = yaml.safe_load(
        (config.HERE / "grafana" / "provisioning" / "datasources" / "prometheus.yml").read_text()
    )["datasources"][0]
    titles = set()
    for path in config.DASHBOARDS_DIR.glob("*.json"):
        model = json.loads(path.read_text())
        assert model["uid"] and model["title"] not in titles and model["panels"]
        titles.add(model["title"])
        ids = [p["id"] for p in model["panels"]]
        assert len(ids) == len(set(ids))
        for panel in model["panels"]:
            assert panel["datasource"]["uid"] == provisioned["uid"]
            assert all(t["expr"] for t in panel["targets"])
    assert len(titles) == 5  # API, batch & drift, training & quality, champion & challenger, bridge health


def test_queries_only_use_metrics_the_bridge_can_name():
    """Every metric in a query is a sanitised snake_case name, as observability.emf.metric_name makes them."""
    for _, _, expr in dashboards.queries():
        for name in re.findall(r"\bdiabetes_risk_[A-Za-z0-9_]+", expr):
            assert name == name.lower()


def test_alertmanager_webhook_bodies_become_flat_records():
    body = {
        "version": "4",
        "status": "firing",
        "alerts": [
            {
                "status": "firing",
                "labels": {"alertname": "BatchDriftDetected", "severity": "warning"},
                "annotations": {"summary": "drift"},
                "startsAt": "2026-11-30T10:00:00Z",
                "endsAt": "0001-01-01T00:00:00Z",
            }
        ],
    }
    (record,) = alerts_of(body)
    assert (record["alertname"], record["status"], record["summary"]) == ("BatchDriftDetected", "firing", "drift")
    assert alerts_of({"alerts": None}) == []
