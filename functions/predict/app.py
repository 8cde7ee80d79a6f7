"""POST /predict, GET /health, GET /model, GET /openapi.json.

Thin: the resolver validates the body against the pydantic models, the inference core scores. Every
client mistake is a 4xx with `{"error", "details": [{"field", "message"}]}`; no model is a 503.
Logs carry the request id and counts, never a patient's values."""

from __future__ import annotations

import gc

# Cold start: no collections while the modules load; at the end of this module what they built (it lives as long as
# the environment) is frozen out of the collector's sight, so the first request's collections skip it. ≈ 12 ms of
# a ≈ 237 ms cold start (11 fresh processes each way, by hand with bench_loop's harness); disabling alone gained
# nothing: the deferred collections then ran during the first request.
_COLLECTING = gc.isenabled()
gc.disable()

import base64
import binascii
import hashlib
import json
import os
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit, single_metric
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from inference_core import scoring

from .resolver import APIGatewayRestResolver, NotFoundError, Response

if TYPE_CHECKING:  # imported for real by openapi_document(): the OpenAPI machinery stays off the request path
    from aws_lambda_powertools.event_handler.openapi.params import Body
from inference_core.contracts import (
    ChallengerInfo,
    ErrorResponse,
    HealthResponse,
    Lineage,
    ModelInfo,
    OnlineFeatures,
    Patient,
    PatientBatch,
    PatientLookup,
    PredictRequest,
    PredictResponse,
)
from inference_core.model_store import ModelStore, ModelUnavailable
from inference_core.shadow import ShadowBuffer


class PredictSettings(BaseModel):
    """Validated at cold start: a missing bucket fails the first request's container, not a request. The DR_*
    variables, read by `from_env` (a plain pydantic model: pydantic-settings costs ≈ 30 ms of cold start here)."""

    model_config = ConfigDict(extra="ignore")
    artifacts_bucket: str = Field(min_length=3)
    pointer_key: str = "serving/champion.json"
    model_refresh_s: float = Field(60.0, ge=0)
    ort_threads: int = Field(1, ge=1, le=8)
    max_body_bytes: int = Field(512 * 1024, ge=1024)
    # light: a SigV4 signer (inference_core.sigv4) over urllib for the model's two GETs (≈ 180 ms less cold start
    # than a boto3 client); the deployed functions use it. boto3: a full client (unit tests run it against moto).
    s3_client: Literal["light", "boto3"] = "boto3"
    # shadow scoring: the challenger scores buffered requests together, when this many patients wait or the oldest
    # has waited this long (what an environment still holds when it is shut down is never scored)
    shadow_batch: int = Field(256, ge=1, le=10_000)
    shadow_flush_s: float = Field(10.0, ge=0, le=300)
    # patient-id predictions: Feast's DynamoDB online store (unset: such requests get a 503 that says so)
    online_table: str | None = Field(None, min_length=3, max_length=255)
    dynamodb_client: Literal["light", "boto3"] = "boto3"
    feature_max_age_days: float = Field(365.0, gt=0, description="Older stored measurements are flagged stale")

    @classmethod
    def from_env(cls, environ=os.environ) -> PredictSettings:
        return cls.model_validate({k[3:].lower(): v for k, v in environ.items() if k.upper().startswith("DR_")})


SETTINGS = PredictSettings.from_env()
logger = Logger(service="diabetes-risk-predict")
metrics = Metrics(namespace="DiabetesRisk", service="predict")
# Tracing is on where POWERTOOLS_TRACE_DISABLED is not true (AWS); off, X-Ray's SDK is never imported (~250 ms).
tracer = (
    None
    if os.environ.get("POWERTOOLS_TRACE_DISABLED", "").lower() in ("1", "true")
    else Tracer(service="diabetes-risk-predict")
)
# capture_response=False: the response holds patients' results, which have no place in a trace
traced = tracer.capture_lambda_handler(capture_response=False) if tracer else (lambda handler: handler)
# The body is validated here, by pydantic-core straight from the raw JSON (one parse): measured 2-3x cheaper
# per request than the resolver's generic validation. The OpenAPI document is still generated from the models.
app = APIGatewayRestResolver(enable_validation=False)
REQUEST = TypeAdapter(PredictRequest)


def s3_client(kind: str):
    """The model store's S3 access: the light reader where the environment has credentials, else boto3."""
    if kind == "light":
        from inference_core.s3_reader import S3Reader

        reader = S3Reader.from_env()
        if reader is not None:
            return reader
    import boto3

    return boto3.client("s3")


STORE = ModelStore(
    s3_client(SETTINGS.s3_client),
    SETTINGS.artifacts_bucket,
    SETTINGS.pointer_key,
    SETTINGS.model_refresh_s,
    SETTINGS.ort_threads,
)
SHADOW = ShadowBuffer(SETTINGS.shadow_batch, SETTINGS.shadow_flush_s)
_ONLINE: dict[str, Any] = {}  # the online-feature reader, made on the first patient-id request (not at cold start)
BUCKETS = [(i / 10, (i + 1) / 10) for i in range(10)]
BUCKET_NAMES = [f"Probability_{low:.1f}_{high:.1f}" for low, high in BUCKETS]


def error(status: int, message: str, details: list[dict] | None = None, kind: str = "bad_request") -> Response:
    metrics.add_metric(name=f"Errors_{kind}", unit=MetricUnit.Count, value=1)
    # and the total, under one name: a sum over the per-kind names collides in PromQL once two kinds share a window
    metrics.add_metric(name="Errors", unit=MetricUnit.Count, value=1)
    body = ErrorResponse(error=message, details=details or []).model_dump_json()
    return Response(status_code=status, content_type="application/json", body=body)


def decode_body(event: dict) -> tuple[dict, dict | None]:
    """API Gateway base64-encodes bodies when binary media types are on (and `sam local generate-event` does
    too): decode to text before anything looks at it. Returns (event, error response or None)."""
    if not event.get("isBase64Encoded") or event.get("body") is None:
        return event, None
    try:
        text = base64.b64decode(event["body"], validate=True).decode("utf-8")
    except UnicodeDecodeError:  # (a ValueError too: first)
        return event, _raw(400, "request body is not UTF-8 text", "body", "send JSON encoded as UTF-8", "invalid_body")
    except (binascii.Error, ValueError):
        return event, _raw(400, "request body is not valid base64", "body", "isBase64Encoded is set", "invalid_body")
    return {**event, "body": text, "isBase64Encoded": False}, None


def precheck(event: dict) -> dict | None:
    """What the body validator should never see: a POST /predict that is not JSON by its content type, too
    large, or empty. Returns the error response, or None when the body may go on to validation (which
    turns invalid JSON into a 400 and everything else it refuses into a 422)."""
    if event.get("httpMethod") != "POST" or event.get("path") != "/predict":
        return None
    headers = {k.lower(): v for k, v in (event.get("headers") or {}).items()}
    content_type = headers.get("content-type") or ""
    if content_type.split(";")[0].strip().lower() != "application/json":
        return _raw(
            415, "Content-Type must be application/json", "Content-Type", f"got {content_type[:60]!r}", "content_type"
        )
    raw = event.get("body") or ""
    try:
        size = len(raw.encode("utf-8"))
    except UnicodeEncodeError:  # lone surrogates: not text any client could have sent as UTF-8
        return _raw(400, "request body is not UTF-8 text", "body", "send JSON encoded as UTF-8", "invalid_body")
    if size > SETTINGS.max_body_bytes:
        return _raw(
            413,
            f"request body larger than {SETTINGS.max_body_bytes} bytes",
            "body",
            "send at most 1000 patients per request",
            "too_large",
        )
    if not raw.strip():
        return _raw(400, "empty request body", "body", "expected a JSON object", "empty")
    return None


def _raw(status: int, message: str, field: str, detail: str, kind: str) -> dict:
    response = error(status, message, [{"field": field, "message": detail}], kind)
    return {
        "statusCode": response.status_code,
        "headers": {"Content-Type": "application/json"},
        "body": response.body,
        "isBase64Encoded": False,
    }


_ERROR = {"application/json": {"model": ErrorResponse}}
# API Gateway answers these itself (the authorizer, throttling), in the same error format.
_GATEWAY = {
    401: {"description": "Missing, invalid or expired access token", "content": _ERROR},
    403: {"description": "The token's scopes do not allow this route", "content": _ERROR},
    429: {"description": "Throttled", "content": _ERROR},
}
BEARER = [{"bearerAuth": []}]


@app.post(
    "/predict",
    summary="Diabetes risk for one patient, up to 1,000, or a patient by id (stored measurements)",
    responses={
        200: {"description": "Risk per patient", "content": {"application/json": {"model": PredictResponse}}},
        400: {"description": "Empty body or not JSON", "content": _ERROR},
        413: {"description": "Body too large", "content": _ERROR},
        415: {"description": "Content-Type is not application/json", "content": _ERROR},
        404: {"description": "patient_id unknown to the online feature store", "content": _ERROR},
        422: {"description": "Invalid measurements, per field", "content": _ERROR},
        503: {"description": "No model available, or the online feature store cannot be read", "content": _ERROR},
        **_GATEWAY,
    },
    security=BEARER,
)
def predict(
    body: Annotated[
        PredictRequest, Body(description='One patient, {"patients": [...]}, or {"patient_id": ...} with any overrides')
    ] = None,
):
    started = time.perf_counter()
    request = REQUEST.validate_json(app.current_event.body)  # `body` above documents it; parsed once, here
    champion = STORE.get()
    stored = None
    if isinstance(request, PatientLookup):
        found = lookup(request)
        if isinstance(found, Response):
            return found
        patient, stored = found
        patients = [patient]
    else:
        patients = request.patients if isinstance(request, PatientBatch) else [request]
    rollout = champion.pointer.rollout
    # the same request always takes the same path, however a retry re-serialises it: the draw hashes the parsed,
    # validated patients (and is computed only while a rollout is on)
    routed = rollout.mode != "none" and rollout_fraction(REQUEST.dump_json(request)) < rollout.share
    answering, variant = champion, "champion"
    if routed and rollout.mode == "canary":
        challenger = STORE.challenger()
        if challenger is not None:
            answering, variant = challenger, "challenger"
        else:
            metrics.add_metric(name="ChallengerUnavailable", unit=MetricUnit.Count, value=1)
    scoring_started = time.perf_counter()
    predictions = scoring.predict(answering, patients)
    scoring_ms = (time.perf_counter() - scoring_started) * 1000
    if rollout.mode == "canary":  # while a canary runs, the record says which model answered
        metrics.add_dimension(name="variant", value=variant)
        metrics.add_metric(name="ScoringLatency", unit=MetricUnit.Milliseconds, value=scoring_ms)
    bands: dict[str, int] = {}
    buckets: dict[str, int] = {}
    for p in predictions:
        bands[p.risk_band] = bands.get(p.risk_band, 0) + 1
        name = BUCKET_NAMES[min(int(p.probability * 10), 9)]
        buckets[name] = buckets.get(name, 0) + 1
    for name, count in buckets.items():
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=count)
    for band, count in bands.items():
        metrics.add_metric(name=f"Predictions_{band}", unit=MetricUnit.Count, value=count)
    _champion_gauge(champion.pointer.model_version)
    # Per-request records are API Gateway's access log and the EMF metrics; this line is DEBUG, so it appears
    # for the sampled share of invocations (POWERTOOLS_LOGGER_SAMPLE_RATE) and costs nothing otherwise.
    logger.debug(
        "scored",
        extra={
            "patients": len(predictions),
            "bands": bands,
            "model_version": answering.pointer.model_version,
            "variant": variant,
            "latency_ms": round((time.perf_counter() - started) * 1000, 3),
        },
    )
    body = PredictResponse(
        model_version=answering.pointer.model_version,
        variant=variant,
        request_id=_request_id(),
        predictions=predictions,
        features=stored,
    )
    response = Response(200, "application/json", body.model_dump_json())
    if routed and rollout.mode == "shadow":
        shadow(champion, patients, predictions)  # after the answer is built: it can neither change nor fail it
    return response


def online_features():
    """The reader of Feast's online store, made once per container on first use: the measurement path never loads
    it. The light client signs one GetItem over urllib; boto3 where the environment has no credentials."""
    if "reader" not in _ONLINE:
        from inference_core.online_features import DynamoReader, OnlineFeatures

        client = DynamoReader.from_env() if SETTINGS.dynamodb_client == "light" else None
        if client is None:
            import boto3

            client = boto3.client("dynamodb")
        _ONLINE["reader"] = OnlineFeatures(client, SETTINGS.online_table)
    return _ONLINE["reader"]


def lookup(request: PatientLookup) -> tuple[Patient, OnlineFeatures] | Response:
    """The patient's latest stored measurements, overridden by any sent with the request. An unknown patient is a
    404; a store that cannot be read is a 503; a required measurement neither stored nor sent is a 422."""
    from inference_core.online_features import OnlineStoreError

    if not SETTINGS.online_table:
        return error(503, "patient-id predictions are not configured here (DR_ONLINE_TABLE)", kind="no_feature_store")
    started = time.perf_counter()
    try:
        stored = online_features().get(request.patient_id)
    except OnlineStoreError as exc:
        logger.warning("online feature store unavailable", extra={"reason": str(exc)[:300]})
        return error(
            503, "the online feature store is unavailable; retry, or send the measurements", kind="feature_store"
        )
    metrics.add_metric(
        name="FeatureLookupLatency", unit=MetricUnit.Milliseconds, value=(time.perf_counter() - started) * 1000
    )
    if stored is None:
        return error(
            404,
            "unknown patient: the online feature store has no measurements for this patient_id",
            [{"field": "patient_id", "message": "no stored measurements; score it with its measurements instead"}],
            kind="unknown_patient",
        )
    overrides = request.overrides()
    values = {k: v for k, v in stored.values.items() if k in Patient.model_fields} | overrides
    try:
        patient = Patient.model_validate({k: v for k, v in values.items() if v is not None})
    except ValidationError as exc:
        details = [{"field": ".".join(map(str, e["loc"])), "message": e["msg"]} for e in exc.errors()[:20]]
        return error(
            422,
            "the stored measurements lack values the model needs: send them with the patient_id",
            details,
            kind="validation",
        )
    age_days = (datetime.now(UTC) - stored.measured_at).total_seconds() / 86400
    stale = age_days > SETTINGS.feature_max_age_days
    metrics.add_metric(name="PatientLookups", unit=MetricUnit.Count, value=1)
    if stale:
        metrics.add_metric(name="StaleFeatures", unit=MetricUnit.Count, value=1)
    return patient, OnlineFeatures(
        patient_id=request.patient_id,
        measured_at=stored.measured_at.isoformat(),
        age_days=round(age_days, 2),
        stale=stale,
        max_age_days=SETTINGS.feature_max_age_days,
        overridden=sorted(overrides),
    )


def rollout_fraction(canonical: bytes) -> float:
    """A uniform number in [0, 1) from the request's canonical JSON: the canary/shadow draw, the same for a retry."""
    return int.from_bytes(hashlib.blake2b(canonical, digest_size=8).digest(), "big") / 2**64


def shadow(champion, patients: list, served: list) -> None:
    """Buffer what the champion answered; when the window is full or old, the challenger scores it in one run and
    the comparison goes into this request's metric record. Never raises: the answer is already built."""
    try:
        SHADOW.add(champion.pointer.challenger.onnx_sha256, patients, served)
        if not SHADOW.due():
            return
        challenger = STORE.challenger()
        if challenger is None:
            metrics.add_metric(name="ChallengerUnavailable", unit=MetricUnit.Count, value=len(SHADOW.patients))
            SHADOW.clear()
            return
        summary = SHADOW.score(challenger, champion)
        if summary is None:
            return
        if summary.rows_dropped:
            metrics.add_metric(name="ShadowRowsDropped", unit=MetricUnit.Count, value=summary.rows_dropped)
            return
        metrics.add_metric(name="ShadowScored", unit=MetricUnit.Count, value=summary.scored)
        metrics.add_metric(name="ShadowBandAgreement", unit=MetricUnit.Count, value=summary.band_agreement)
        metrics.add_metric(name="ShadowAbsProbabilityDiffSum", unit=MetricUnit.NoUnit, value=summary.abs_diff_sum)
        metrics.add_metric(
            name="ShadowChallengerProbabilitySum", unit=MetricUnit.NoUnit, value=summary.challenger_p_sum
        )
        metrics.add_metric(name="ShadowChampionProbabilitySum", unit=MetricUnit.NoUnit, value=summary.champion_p_sum)
        metrics.add_metric(name="ChallengerScoringLatency", unit=MetricUnit.Milliseconds, value=summary.challenger_ms)
        metrics.add_metric(name="ChampionScoringLatency", unit=MetricUnit.Milliseconds, value=summary.champion_ms)
        for decile, count in summary.deciles.items():
            metrics.add_metric(name=f"Challenger{BUCKET_NAMES[decile]}", unit=MetricUnit.Count, value=count)
    except Exception:
        logger.exception("shadow scoring failed; the champion's answers are unaffected")
        metrics.add_metric(name="ShadowErrors", unit=MetricUnit.Count, value=1)
        SHADOW.clear()


_GAUGE = {"version": None, "at": 0.0}


def _champion_gauge(version: str) -> None:
    """The serving version as a gauge: on change and once a minute, not on every request."""
    now = time.monotonic()
    if version != _GAUGE["version"] or now - _GAUGE["at"] >= 60:
        metrics.add_metric(name="ChampionVersion", unit=MetricUnit.NoUnit, value=float(version))
        _GAUGE.update(version=version, at=now)


@app.get("/health", summary="Ready when a champion model is loaded")
def health() -> Response[HealthResponse]:
    try:
        model = STORE.get()
    except ModelUnavailable as exc:
        metrics.add_metric(name="Errors_model_unavailable", unit=MetricUnit.Count, value=1)
        return Response(503, "application/json", HealthResponse(status="unavailable", detail=str(exc)))
    return Response(200, "application/json", HealthResponse(status="ok", model_version=model.pointer.model_version))


@app.get(
    "/model",
    summary="The serving model (version, metrics, thresholds, lineage), its challenger and rollout",
    responses={
        200: {"description": "The serving model", "content": {"application/json": {"model": ModelInfo}}},
        503: {"description": "No model available", "content": _ERROR},
        **_GATEWAY,
    },
    security=BEARER,
)
def model_info() -> ModelInfo:
    p = STORE.get().pointer
    return ModelInfo(
        model_name=p.model_name,
        model_version=p.model_version,
        family=p.family,
        trained_at=p.trained_at,
        promoted_at=p.promoted_at,
        metrics=p.metrics,
        features=p.features,
        thresholds=p.thresholds,
        contributions=(
            "per-feature log-odds contributions (logistic regression)"
            if p.explainer
            else "not available for this model family (tree ensemble); only for logistic regression"
        ),
        lineage=Lineage(
            mlflow_run_id=p.mlflow_run_id,
            training_data_uri=p.training_data_uri,
            training_data_sha256=p.training_data_sha256,
            onnx_sha256=p.onnx_sha256,
        ),
        rollout=p.rollout,
        challenger=(
            ChallengerInfo(
                model_version=p.challenger.model_version,
                family=p.challenger.family,
                metrics=p.challenger.metrics,
                onnx_sha256=p.challenger.onnx_sha256,
            )
            if p.challenger
            else None
        ),
        previous_version=p.previous.model_version if p.previous else None,
    )


@app.get("/openapi.json", include_in_schema=False)
def openapi() -> Response[dict]:
    return Response(200, "application/json", json.loads(openapi_document()))


def openapi_document() -> str:
    # The OpenAPI machinery costs ≈ 90 ms of import: loaded here, on the first /openapi.json. The route's
    # annotations stay strings until now (`from __future__ import annotations`); Body is the name they use.
    from aws_lambda_powertools.event_handler.openapi.params import Body

    globals()["Body"] = Body
    document = json.loads(
        app.get_openapi_json_schema(
            title="Diabetes Risk prediction API",
            version="1.0.0",
            summary="Risk of diabetes from routine clinical measurements (decision support, not a diagnosis).",
            security_schemes={
                "bearerAuth": {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "JWT",
                    "description": "OAuth 2.0 client-credentials access token (Cognito on AWS; "
                    "`diabetes-risk token` on the local cloud), scopes diabetes-risk/predict, diabetes-risk/model:read",
                }
            },
        )
    )
    # The handler takes the body as an optional parameter (it parses the raw JSON itself, once), which makes
    # the generated document call it optional; the API refuses an empty body, so the document says required.
    document["paths"]["/predict"]["post"]["requestBody"]["required"] = True
    return json.dumps(document)


@app.exception_handler(ValidationError)
def invalid_request(exc: ValidationError) -> Response:
    errors = exc.errors()
    if any(err.get("type") == "json_invalid" for err in errors):
        return error(
            400, "request body is not valid JSON", [{"field": "body", "message": "JSON decode error"}], "invalid_json"
        )
    details = []
    for err in errors[:50]:
        loc = [str(part) for part in err.get("loc", ()) if part not in ("body", "patient", "batch", "lookup")]
        details.append({"field": ".".join(loc) or "body", "message": err.get("msg", "invalid")})
    return error(422, "invalid request: check the fields listed in details", details, "validation")


@app.exception_handler(ModelUnavailable)
def unavailable(exc: ModelUnavailable) -> Response:
    return error(503, f"no model available: {exc}", kind="model_unavailable")


@app.not_found
def not_found(exc: NotFoundError) -> Response:
    return error(404, f"no route {app.current_event.http_method} {app.current_event.path}", kind="not_found")


@app.exception_handler(Exception)
def unexpected(exc: Exception) -> Response:
    logger.exception("unexpected error")
    return error(500, "internal error; the request id identifies it in the logs", kind="internal")


def _count_client(event: dict) -> None:
    """Requests per client system (the authorizer's `client`, a name, never the token): its own EMF record,
    because its dimension differs from the function's other metrics."""
    client = ((event.get("requestContext") or {}).get("authorizer") or {}).get("client")
    if not client:
        return
    logger.append_keys(client=str(client)[:64])  # this invocation's log lines name the client system
    with single_metric(
        name="ClientRequests", unit=MetricUnit.Count, value=1, namespace="DiabetesRisk", default_dimensions={}
    ) as metric:
        metric.add_dimension(name="service", value="predict")
        metric.add_dimension(name="client", value=str(client)[:64])


def _request_id() -> str:
    try:
        return app.current_event.request_context.request_id or app.lambda_context.aws_request_id
    except AttributeError:
        return app.lambda_context.aws_request_id


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST, clear_state=True)
@metrics.log_metrics(capture_cold_start_metric=True)
@traced
def handler(event: dict, context: Any) -> dict:
    started = time.perf_counter()
    _count_client(event)
    event, refused = decode_body(event)
    response = refused or precheck(event) or app.resolve(event, context)
    metrics.add_metric(name="Latency", unit=MetricUnit.Milliseconds, value=(time.perf_counter() - started) * 1000)
    if response.get("statusCode", 500) >= 500:
        metrics.add_metric(name="ServerErrors", unit=MetricUnit.Count, value=1)
    return response


if not globals().get("_FROZEN"):  # once per process: a reload (tests) must not freeze whatever is alive by then
    gc.freeze()  # the loaded modules and module-level objects: see the top of the module
    _FROZEN = True
if _COLLECTING:
    gc.enable()
