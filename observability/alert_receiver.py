"""The operator's alert inbox for the local cloud: Alertmanager's webhook receiver.

Each notification's alerts are appended to a JSON-lines file (`diabetes-risk alerts` prints it); GET /alerts
returns the latest as JSON, GET /-/healthy answers 200. Standard library only, loopback only.

    python -m observability.alert_receiver --port 9095 --file alerts.jsonl
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

MAX_BODY = 1_000_000


def alerts_of(notification: dict) -> list[dict]:
    """Alertmanager's webhook body (version 4) → one flat record per alert."""
    out = []
    for alert in notification.get("alerts") or []:
        labels = alert.get("labels") or {}
        annotations = alert.get("annotations") or {}
        out.append(
            {
                "received_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "status": alert.get("status") or notification.get("status"),
                "alertname": labels.get("alertname"),
                "severity": labels.get("severity"),
                "summary": annotations.get("summary"),
                "description": annotations.get("description"),
                "labels": labels,
                "starts_at": alert.get("startsAt"),
                "ends_at": alert.get("endsAt"),
            }
        )
    return out


def read_alerts(path: Path, limit: int = 200) -> list[dict]:
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        return []
    return [json.loads(line) for line in lines[-limit:] if line.strip()]


def make_server(host: str, port: int, path: Path) -> ThreadingHTTPServer:
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

        def _reply(self, status: int, body: object) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            if self.path == "/-/healthy":
                return self._reply(200, {"status": "ok"})
            if self.path.split("?")[0] == "/alerts":
                return self._reply(200, read_alerts(path))
            return self._reply(404, {"error": f"no route GET {self.path}"})

        def do_POST(self) -> None:
            if self.path != "/alerts":
                return self._reply(404, {"error": f"no route POST {self.path}"})
            length = int(self.headers.get("Content-Length") or 0)
            if not 0 < length <= MAX_BODY:
                return self._reply(400, {"error": f"body must be 1..{MAX_BODY} bytes, got {length}"})
            try:
                notification = json.loads(self.rfile.read(length))
                records = alerts_of(notification)
            except (ValueError, AttributeError) as exc:
                return self._reply(400, {"error": f"not an Alertmanager webhook body: {exc}"})
            with lock, path.open("a") as out:
                for record in records:
                    out.write(json.dumps(record) + "\n")
            return self._reply(200, {"stored": len(records)})

    return ThreadingHTTPServer((host, port), Handler)


def main() -> None:
    parser = argparse.ArgumentParser(description="Alertmanager webhook receiver: keeps alerts in a JSON-lines file.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9095)
    parser.add_argument("--file", type=Path, required=True, help="where alerts are appended (JSON lines)")
    args = parser.parse_args()
    args.file.parent.mkdir(parents=True, exist_ok=True)
    make_server(args.host, args.port, args.file).serve_forever()


if __name__ == "__main__":
    main()
