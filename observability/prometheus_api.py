"""A few calls of Prometheus' HTTP API (instant query, alerts), shared by the CLI, the tests and the bench."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request

_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class PrometheusError(RuntimeError):
    """Prometheus could not be reached, or refused the query (the message says which and why)."""


def _get(url: str, timeout: float) -> dict:
    try:
        with _OPENER.open(url, timeout=timeout) as response:
            body = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        try:
            detail = json.loads(exc.read()).get("error", "")
        except ValueError:
            detail = ""
        raise PrometheusError(f"Prometheus answered HTTP {exc.code}: {detail}") from exc
    except (urllib.error.URLError, OSError) as exc:
        raise PrometheusError(f"Prometheus is not reachable at {url.split('/api/')[0]}: {exc}") from exc
    if body.get("status") != "success":
        raise PrometheusError(f"Prometheus refused the request: {body.get('error')}")
    return body["data"]


def query(base_url: str, expr: str, timeout: float = 10.0) -> list[dict]:
    """Instant query: [{"metric": {...}, "value": [ts, "v"]}, ...] (a scalar comes back as one row)."""
    data = _get(f"{base_url}/api/v1/query?{urllib.parse.urlencode({'query': expr})}", timeout)
    if data["resultType"] in ("scalar", "string"):
        return [{"metric": {}, "value": data["result"]}]
    return data["result"]


def scalar(base_url: str, expr: str, timeout: float = 10.0) -> float | None:
    """The single value of a query that aggregates to one series (None when it has no data)."""
    rows = query(base_url, expr, timeout)
    return float(rows[0]["value"][1]) if rows else None


def alerts(base_url: str, timeout: float = 10.0) -> list[dict]:
    """Pending and firing alerts as Prometheus evaluates them now."""
    return _get(f"{base_url}/api/v1/alerts", timeout)["alerts"]
