"""Monitoring: the EMF → Prometheus bridge (logic only: no Lambda types), the Prometheus and Alertmanager
configuration, alert rules with their promtool tests, and the Grafana dashboards as code.

Dependency rule (enforced by a test): the bridge modules import only the standard library, protobuf, cramjam
and botocore — they ship in the bridge Lambda's zip."""
