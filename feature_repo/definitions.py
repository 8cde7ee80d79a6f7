"""Feast definitions: the patient entity and the measurements feature view over the validated Parquet.

`objects(source_path)` builds them for any location (local path or s3://, with an endpoint override for
the local cloud); the module-level objects serve `feast apply` run from this folder, reading the path
from DR_FEAST_SOURCE.
"""

from __future__ import annotations

import os
from datetime import timedelta

from feast import Entity, FeatureView, Field, FileSource, ValueType
from feast.types import Float64

from inference_core.schema import FEATURES

PROJECT = "diabetes_risk"
VIEW = "patient_measurements"


def objects(source_path: str, s3_endpoint: str | None = None) -> list:
    patient = Entity(
        name="patient",
        join_keys=["patient_id"],
        value_type=ValueType.INT64,
        description="One patient's record in a dataset (ids are per dataset).",
    )
    source = FileSource(
        name="validated_measurements",
        path=source_path,
        timestamp_field="event_timestamp",
        s3_endpoint_override=s3_endpoint,
    )
    view = FeatureView(
        name=VIEW,
        entities=[patient],
        ttl=timedelta(days=3650),
        schema=[Field(name=name, dtype=Float64) for name in FEATURES],
        source=source,
        online=True,
        description="Validated clinical measurements, canonical units; missing values stay missing.",
    )
    return [patient, source, view]


patient, validated_measurements, patient_measurements = objects(
    os.environ.get("DR_FEAST_SOURCE", "data/patients.parquet"), os.environ.get("FEAST_S3_ENDPOINT_URL")
)
