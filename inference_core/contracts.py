"""The prediction API's request, response and model-description models (pydantic), and the serving
pointer that training publishes. The OpenAPI document is generated from these."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag

from .schema import RANGES

MAX_PATIENTS = 1000

_DESCRIPTIONS = {
    "pregnancies": "Number of pregnancies",
    "glucose": "Plasma glucose 2 h after an oral glucose tolerance test, mg/dL",
    "blood_pressure": "Diastolic blood pressure, mmHg",
    "skin_thickness": "Triceps skin-fold thickness, mm",
    "insulin": "2-hour serum insulin, µU/mL (optional: imputed when absent)",
    "bmi": "Body mass index, kg/m²",
    "diabetes_pedigree": "Diabetes pedigree function (family history score)",
    "age": "Age, years",
}


EXAMPLE_PATIENT = {
    "pregnancies": 2,
    "glucose": 138,
    "blood_pressure": 62,
    "skin_thickness": 35,
    "bmi": 33.6,
    "diabetes_pedigree": 0.127,
    "age": 47,
}


class _Contract(BaseModel):
    """Each model is built on first use, not at import: a prediction's cold start builds only what it touches
    (the /health and /model answers, errors and lineage wait for their first request)."""

    model_config = ConfigDict(defer_build=True)


def _measure(name: str, optional: bool = False):
    lo, hi = RANGES[name]
    return Field(None if optional else ..., ge=lo, le=hi, allow_inf_nan=False, description=_DESCRIPTIONS[name])


class Patient(_Contract):
    """One patient's routine measurements, canonical units. Unknown fields are refused."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra={"examples": [EXAMPLE_PATIENT]},
    )
    pregnancies: float = _measure("pregnancies")
    glucose: float = _measure("glucose")
    blood_pressure: float = _measure("blood_pressure")
    skin_thickness: float = _measure("skin_thickness")
    insulin: float | None = _measure("insulin", optional=True)
    bmi: float = _measure("bmi")
    diabetes_pedigree: float = _measure("diabetes_pedigree")
    age: float = _measure("age")


class PatientBatch(_Contract):
    """Up to 1,000 patients scored in one request."""

    model_config = ConfigDict(extra="forbid", strict=True)
    patients: list[Patient] = Field(min_length=1, max_length=MAX_PATIENTS)


class PatientLookup(_Contract):
    """A patient by id: scored on their latest measurements in the online feature store. Measurements given here
    (any of them) override the stored ones, e.g. a glucose taken today."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra={
            "examples": [{"patient_id": "pima-tr2-0001"}, {"patient_id": "pima-tr2-0001", "glucose": 151}]
        },
    )
    patient_id: str = Field(
        min_length=1, max_length=128, pattern=r"^\S(.*\S)?$", description="The clinic's patient id (no edge spaces)"
    )
    pregnancies: float | None = _measure("pregnancies", optional=True)
    glucose: float | None = _measure("glucose", optional=True)
    blood_pressure: float | None = _measure("blood_pressure", optional=True)
    skin_thickness: float | None = _measure("skin_thickness", optional=True)
    insulin: float | None = _measure("insulin", optional=True)
    bmi: float | None = _measure("bmi", optional=True)
    diabetes_pedigree: float | None = _measure("diabetes_pedigree", optional=True)
    age: float | None = _measure("age", optional=True)

    def overrides(self) -> dict[str, float]:
        return {k: v for k, v in self.model_dump(exclude={"patient_id"}).items() if v is not None}


def _request_kind(value: Any) -> str:
    if isinstance(value, dict) and "patients" in value:
        return "batch"
    return "lookup" if isinstance(value, dict) and "patient_id" in value else "patient"


PredictRequest = Annotated[
    Annotated[Patient, Tag("patient")]
    | Annotated[PatientBatch, Tag("batch")]
    | Annotated[PatientLookup, Tag("lookup")],
    Discriminator(_request_kind),
]


class Prediction(_Contract):
    probability: float = Field(ge=0, le=1, description="Estimated probability of diabetes")
    risk_band: Literal["low", "moderate", "high"]
    contributions: dict[str, float] | None = Field(
        None,
        description="Per-feature contribution to the log-odds (coefficient times standardised value, times the "
        "Platt slope when the model is calibrated), for logistic regressions only; null for tree ensembles.",
    )


class OnlineFeatures(_Contract):
    """Where a patient-id prediction's measurements came from."""

    patient_id: str
    measured_at: str = Field(description="When the stored measurements were taken (ISO 8601, UTC)")
    age_days: float = Field(description="Days between that measurement and this request")
    stale: bool = Field(description="Older than the deployment's maximum feature age: re-measure before relying on it")
    max_age_days: float
    overridden: list[str] = Field(default_factory=list, description="Measurements taken from the request instead")


class PredictResponse(_Contract):
    model_version: str = Field(description="The version of the model that answered")
    variant: Literal["champion", "challenger"] = Field(
        "champion", description="Which model answered: the challenger only for the canary share of requests"
    )
    request_id: str
    predictions: list[Prediction]
    features: OnlineFeatures | None = Field(None, description='For {"patient_id": ...}: the stored measurements used')


class ErrorDetail(_Contract):
    field: str
    message: str


class ErrorResponse(_Contract):
    error: str
    details: list[ErrorDetail] = Field(default_factory=list)


class Lineage(_Contract):
    mlflow_run_id: str
    training_data_uri: str
    training_data_sha256: str
    onnx_sha256: str


class ChallengerInfo(_Contract):
    model_version: str
    family: str
    metrics: dict[str, float]
    onnx_sha256: str


class ModelInfo(_Contract):
    model_name: str
    model_version: str
    family: str
    trained_at: str
    promoted_at: str
    metrics: dict[str, float]
    features: list[str]
    thresholds: dict[str, float]
    contributions: str
    lineage: Lineage
    rollout: Rollout
    challenger: ChallengerInfo | None = None
    previous_version: str | None = None


class HealthResponse(_Contract):
    status: Literal["ok", "unavailable"]
    model_version: str | None = None
    detail: str | None = None


class LinearExplainer(_Contract):
    """What a logistic-regression pipeline needs to explain a prediction without scikit-learn."""

    kind: Literal["linear"] = "linear"
    medians: list[float]
    mean: list[float]
    scale: list[float]
    coef: list[float]
    intercept: float


class Calibration(_Contract):
    """Platt scaling of the ONNX model's probability, chosen in training where it improves the Brier score."""

    kind: Literal["platt"] = "platt"
    a: float = Field(gt=0)
    b: float


class ModelRef(_Contract):
    """One published model: its files in the artifacts bucket and what serving needs to use and describe it."""

    model_config = ConfigDict(extra="ignore", protected_namespaces=())
    model_version: str
    family: str
    onnx_key: str
    onnx_sha256: str
    profile_key: str
    model_card_key: str
    features: list[str]
    thresholds: dict[str, float]
    metrics: dict[str, float]
    mlflow_run_id: str
    training_data_uri: str
    training_data_sha256: str
    trained_at: str
    promoted_at: str
    explainer: LinearExplainer | None = None
    calibration: Calibration | None = None


class Rollout(_Contract):
    """How the challenger meets live traffic. none: champion only. shadow: `share` of requests are also scored by
    the challenger, the champion answers. canary: `share` of requests are answered by the challenger."""

    mode: Literal["none", "shadow", "canary"] = "none"
    share: float = Field(0.0, ge=0.0, le=1.0)


class ServingPointer(ModelRef):
    """serving/champion.json: the champion (these fields), the challenger and previous champion when there are
    ones, and the rollout. One object, written last, so a reader sees one consistent decision."""

    model_name: str
    challenger: ModelRef | None = None
    previous: ModelRef | None = None
    rollout: Rollout = Field(default_factory=Rollout)

    def champion_ref(self) -> ModelRef:
        return ModelRef.model_validate(self.model_dump(include=set(ModelRef.model_fields)))
