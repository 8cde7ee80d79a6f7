"""A fresh local cloud for a benchmark: its own instance name and free ports, so it never meets `make up`'s."""

from __future__ import annotations

from dr_host_executor.process import free_port

from localcloud.settings import LocalCloudSettings


def fresh_cloud(instance: str, **settings) -> LocalCloudSettings:
    return LocalCloudSettings(
        instance=instance,
        localstack_port=free_port(),
        mlflow_port=free_port(),
        prometheus_port=free_port(),
        alertmanager_port=free_port(),
        alerts_port=free_port(),
        console_port=free_port(),
        **settings,
    )
