"""The committed Prometheus and Alertmanager files, rendered for the embedded local cloud (loopback
addresses, absolute rule paths). docker-compose uses the committed files as they are."""

from __future__ import annotations

from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
PROMETHEUS_YML = HERE / "prometheus" / "prometheus.yml"
RULES_DIR = HERE / "prometheus" / "rules"
RULE_TESTS_DIR = HERE / "prometheus" / "tests"
ALERTMANAGER_YML = HERE / "alertmanager" / "alertmanager.yml"
DASHBOARDS_DIR = HERE / "grafana" / "dashboards"


def rule_files() -> list[Path]:
    return sorted(RULES_DIR.glob("*.yml"))


def render_prometheus(host: str, prometheus_port: int, alertmanager_port: int) -> str:
    config = yaml.safe_load(PROMETHEUS_YML.read_text())
    config["rule_files"] = [str(RULES_DIR / "*.yml")]
    config["alerting"]["alertmanagers"] = [{"static_configs": [{"targets": [f"{host}:{alertmanager_port}"]}]}]
    targets = {"prometheus": f"{host}:{prometheus_port}", "alertmanager": f"{host}:{alertmanager_port}"}
    for job in config["scrape_configs"]:
        job["static_configs"] = [{"targets": [targets[job["job_name"]]]}]
    return yaml.safe_dump(config, sort_keys=False)


def render_alertmanager(host: str, receiver_port: int) -> str:
    config = yaml.safe_load(ALERTMANAGER_YML.read_text())
    for receiver in config["receivers"]:
        for hook in receiver.get("webhook_configs", []):
            hook["url"] = f"http://{host}:{receiver_port}/alerts"
    return yaml.safe_dump(config, sort_keys=False)
