"""Client side of `diabetes-risk predict`: find the API, check rows before sending, send in batches."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import requests
from pydantic import ValidationError

from inference_core.contracts import MAX_PATIENTS, Patient


class ApiError(RuntimeError):
    """The API could not be reached or refused the request; the message says which and why."""


@dataclass
class FileResult:
    predictions: list[dict[str, Any]] = field(default_factory=list)  # row, probability, risk_band
    rejected: list[dict[str, Any]] = field(default_factory=list)  # row, field, message
    model_version: str | None = None


def local_api_url(localstack_url: str, api_id: str, stage: str = "prod") -> str:
    return f"{localstack_url}/_aws/execute-api/{api_id}/{stage}"


def post_predict(
    url: str, body: Any, api_key: str | None = None, timeout: float = 30.0, token: str | None = None
) -> dict:
    headers = {"Content-Type": "application/json"}
    if api_key:
        headers["x-api-key"] = api_key
    if token:
        headers["Authorization"] = f"Bearer {token}"
    try:
        response = requests.post(f"{url.rstrip('/')}/predict", json=body, headers=headers, timeout=timeout)
    except requests.RequestException as exc:
        raise ApiError(f"cannot reach the prediction API at {url}: {exc}") from exc
    try:
        payload = response.json()
    except ValueError:
        payload = {"error": response.text[:200]}
    if response.status_code >= 400:
        details = "; ".join(f"{d.get('field')}: {d.get('message')}" for d in payload.get("details", []))
        raise ApiError(f"{response.status_code} {payload.get('error', '')}" + (f" ({details})" if details else ""))
    return payload


def rows_from_file(path: str) -> tuple[list[tuple[int, Patient]], list[dict[str, Any]]]:
    """Read a CSV/Parquet file in any known format; keep the valid rows, report the others by row number."""
    from inference_core.schema import FEATURES
    from training.data import load_table

    table = load_table(path, require_label=False)
    rejected = [{"row": i.row, "field": i.column, "message": i.message} for i in table.issues]
    bad_rows = {r["row"] for r in rejected}
    valid: list[tuple[int, Patient]] = []
    for index, record in enumerate(table.frame[list(FEATURES)].to_dict("records"), start=1):
        if index in bad_rows:
            continue
        values = {k: v for k, v in record.items() if not (isinstance(v, float) and math.isnan(v))}
        try:
            valid.append((index, Patient(**values)))
        except ValidationError as exc:
            for err in exc.errors():
                rejected.append({"row": index, "field": ".".join(map(str, err["loc"])) or "row", "message": err["msg"]})
    return valid, sorted(rejected, key=lambda r: (r["row"], r["field"]))


def predict_file(url: str, path: str, api_key: str | None = None, token: str | None = None) -> FileResult:
    rows, rejected = rows_from_file(path)
    result = FileResult(rejected=rejected)
    for start in range(0, len(rows), MAX_PATIENTS):
        chunk = rows[start : start + MAX_PATIENTS]
        body = {"patients": [p.model_dump(exclude_none=True) for _, p in chunk]}
        payload = post_predict(url, body, api_key, token=token)
        result.model_version = payload["model_version"]
        for (row, _), prediction in zip(chunk, payload["predictions"], strict=True):
            result.predictions.append(
                {"row": row, "probability": prediction["probability"], "risk_band": prediction["risk_band"]}
            )
    return result
