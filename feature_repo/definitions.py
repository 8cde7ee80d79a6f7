"""Feast definitions: the patient entity and the measurements feature view over the offline store's Parquet folder.

`objects(source_path)` builds them for any location (a local folder or s3://bucket/features/measurements/, with an
endpoint override for the local cloud); the module-level objects serve `feast apply` run from this folder, reading
the folder from DR_FEAST_SOURCE. Names and columns come from inference_core/feature_layout.py, which batch scoring
and the prediction function share without importing Feast.
"""

from __future__ import annotations

import os
from datetime import timedelta

from feast import Entity, FeatureView, Field, FileSource, ValueType
from feast.types import Float64

from inference_core.feature_layout import CREATED_COLUMN, ID_COLUMN, PROJECT, TIME_COLUMN, VIEW
from inference_core.schema import FEATURES

__all__ = ["PROJECT", "VIEW", "objects"]


def objects(source_path: str, s3_endpoint: str | None = None) -> list:
    patient = Entity(
        name="patient",
        join_keys=[ID_COLUMN],
        value_type=ValueType.STRING,
        description="A patient, by the clinic's stable id (derived for the bundled public data: see the model card)",
    )
    source = FileSource(
        name="measurements",
        path=source_path,
        timestamp_field=TIME_COLUMN,
        created_timestamp_column=CREATED_COLUMN,  # a tie on (patient, measured_at): the later-written row wins
        s3_endpoint_override=s3_endpoint,
        description="Every measurement: training datasets and the valid rows of scored batches, by date",
    )
    view = FeatureView(
        name=VIEW,
        entities=[patient],
        # how far back a point-in-time join looks for a measurement: older ones are not used for a label
        ttl=timedelta(days=3 * 365),
        schema=[Field(name=name, dtype=Float64) for name in FEATURES],
        source=source,
        online=True,
        description="Validated clinical measurements, canonical units; missing values stay missing.",
    )
    return [patient, source, view]


patient, measurements, patient_measurements = objects(
    os.environ.get("DR_FEAST_SOURCE", "data/measurements"), os.environ.get("FEAST_S3_ENDPOINT_URL")
)
