"""Baseline for bench_predict: the same API (resolver, pydantic contracts, metrics, logs) scoring with the
scikit-learn pipeline loaded by joblib, as a handler without ONNX would."""

from __future__ import annotations

import os
import time
from typing import Annotated, Any

import joblib
import pandas as pd
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.openapi.params import Body
from aws_lambda_powertools.metrics import MetricUnit
from pydantic import TypeAdapter

from inference_core.contracts import PatientBatch, Prediction, PredictRequest, PredictResponse
from inference_core.scoring import risk_band

logger = Logger(service="sklearn-baseline")
metrics = Metrics(namespace="DiabetesRiskBench", service="predict-sklearn")
app = APIGatewayRestResolver(enable_validation=False)  # validated as predict.app does: pydantic-core, one parse
REQUEST = TypeAdapter(PredictRequest)
MODEL = joblib.load(os.environ["BENCH_SKLEARN_MODEL"])
FEATURES = os.environ["BENCH_FEATURES"].split(",")
THRESHOLDS = {"low": float(os.environ["BENCH_LOW"]), "high": float(os.environ["BENCH_HIGH"])}


@app.post("/predict")
def predict(body: Annotated[PredictRequest, Body()] = None) -> Response:
    request = REQUEST.validate_json(app.current_event.body)
    patients = request.patients if isinstance(request, PatientBatch) else [request]
    frame = pd.DataFrame([p.model_dump() for p in patients])[FEATURES]
    proba = MODEL.predict_proba(frame)[:, 1]
    predictions = [Prediction(probability=round(float(p), 6), risk_band=risk_band(float(p), THRESHOLDS)) for p in proba]
    metrics.add_metric(name="PatientsScored", unit=MetricUnit.Count, value=len(predictions))
    logger.debug("scored", extra={"patients": len(predictions)})
    body = PredictResponse(model_version="bench", request_id="bench", predictions=predictions)
    return Response(200, "application/json", body.model_dump_json())


@metrics.log_metrics
def handler(event: dict, context: Any) -> dict:
    started = time.perf_counter()
    response = app.resolve(event, context)
    metrics.add_metric(name="Latency", unit=MetricUnit.Milliseconds, value=(time.perf_counter() - started) * 1000)
    return response
