"""Locust users for bench/bench_api_load.py (run as `locust -f` in its own process: locust patches sockets).

`ApiClient`: a clinic system with a valid token: single-patient requests, 100-patient batches, and some
invalid ones (a bad value → 422, no token → 401). `HealthClient`: the same number of users on GET /health
(the baseline: the stack's own overhead without authorization or scoring). A response counts as a failure
only if it is not what that request should get; 429 is expected under throttling and must carry the API's
error body. Status counts go to DR_LOAD_STATUS_FILE when the run stops."""

from __future__ import annotations

import collections
import itertools
import json
import os

from locust import HttpUser, constant, events, task

TOKENS = json.loads(os.environ.get("DR_LOAD_TOKENS", "[]")) or [
    ""
]  # one per user: each is authorized once, then cached
_NEXT = itertools.count()
PATIENT = json.loads(os.environ.get("DR_LOAD_PATIENT", "{}"))
STATUS: collections.Counter = collections.Counter()
THROTTLED = {"with_error_body": 0, "without_error_body": 0}
BATCH = {"patients": [{**PATIENT, "glucose": 80 + (i * 7) % 120, "age": 21 + i % 50} for i in range(100)]}


def _check(response, expected: int) -> None:
    STATUS[response.status_code] += 1
    if response.status_code == 429:
        try:
            ok = bool(response.json().get("error"))
        except ValueError:
            ok = False
        THROTTLED["with_error_body" if ok else "without_error_body"] += 1
        if ok:
            response.success()
        else:
            response.failure("429 without the API's error body")
    elif response.status_code == expected:
        response.success()
    else:
        response.failure(f"expected {expected}, got {response.status_code}")


class ApiClient(HttpUser):
    wait_time = constant(0)

    def on_start(self) -> None:
        token = TOKENS[next(_NEXT) % len(TOKENS)]
        self.headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

    @task(12)
    def single(self) -> None:
        with self.client.post(
            "/predict", json=PATIENT, headers=self.headers, name="predict 1", catch_response=True
        ) as r:
            _check(r, 200)

    @task(3)
    def batch(self) -> None:
        with self.client.post(
            "/predict", json=BATCH, headers=self.headers, name="predict 100", catch_response=True
        ) as r:
            _check(r, 200)

    @task(1)
    def invalid_value(self) -> None:
        body = {**PATIENT, "glucose": "high"}
        with self.client.post("/predict", json=body, headers=self.headers, name="invalid", catch_response=True) as r:
            _check(r, 422)

    @task(1)
    def no_token(self) -> None:
        with self.client.post("/predict", json=PATIENT, name="no token", catch_response=True) as r:
            _check(r, 401)


class HealthClient(HttpUser):
    wait_time = constant(0)

    @task
    def health(self) -> None:
        with self.client.get("/health", name="health", catch_response=True) as r:
            _check(r, 200)


@events.test_stop.add_listener
def _write_status(**_kwargs) -> None:
    path = os.environ.get("DR_LOAD_STATUS_FILE")
    if path:
        with open(path, "w") as out:
            json.dump({"status": {str(k): v for k, v in STATUS.items()}, "throttled": THROTTLED}, out)
