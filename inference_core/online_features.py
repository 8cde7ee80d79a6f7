"""Read what Feast materialised into its DynamoDB online store, without importing Feast.

`import feast` takes seconds; the prediction function reads one item per patient. Feast's DynamoDB store keeps
one item per entity: `entity_id` (murmur3-128 of the serialised entity key, hex), `event_ts` (the measurement's
time as text) and `values` (feature name → a serialised `feast.types.Value` protobuf). This module computes the
same key and decodes the same values (doubles; an empty message is a missing value). A unit test materialises
with Feast itself and checks that this reader returns what `get_online_features` returns.
"""

from __future__ import annotations

import base64
import json
import os
import struct
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime

import mmh3

from . import light_http
from .sigv4 import Credentials, sign

JOIN_KEY = "patient_id"
_STRING = 2  # feast ValueType.STRING
_DOUBLE_TAG = 0x29  # feast.types.Value.double_val: field 5, wire type 1 (64-bit)
_FLOAT_TAG = 0x35  # float_val: field 6, wire type 5 (32-bit)
_INT64_TAG = 0x20  # int64_val: field 4, varint


class OnlineStoreError(RuntimeError):
    """The online store could not be read (the message says how); not the client's fault."""


class UndecodableValue(ValueError):
    """A stored value this reader does not know (the feature view's types changed)."""


def entity_key(patient_id: str) -> bytes:
    """Feast's serialisation of the entity key, version 3, for the one join key `patient_id`."""
    name, value = JOIN_KEY.encode(), patient_id.encode("utf-8")
    return b"".join(
        (
            struct.pack("<I", 1),
            struct.pack("<I", _STRING),
            struct.pack("<I", len(name)),
            name,
            struct.pack("<I", _STRING),
            struct.pack("<I", len(value)),
            value,
        )
    )


def entity_id(patient_id: str) -> str:
    """The DynamoDB partition key Feast writes for this patient."""
    return mmh3.hash_bytes(entity_key(patient_id)).hex()


def decode_value(data: bytes) -> float | None:
    """One serialised Value: a double (or float/int64), or None for Feast's null (an empty message)."""
    if not data:
        return None
    tag = data[0]
    if tag == _DOUBLE_TAG and len(data) == 9:
        return struct.unpack("<d", data[1:9])[0]
    if tag == _FLOAT_TAG and len(data) == 5:
        return float(struct.unpack("<f", data[1:5])[0])
    if tag == _INT64_TAG:
        shift = result = 0
        for byte in data[1:]:
            result |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                return float(result - (1 << 64) if result >= 1 << 63 else result)
    raise UndecodableValue(f"unsupported stored value (first byte {tag:#x}, {len(data)} bytes)")


@dataclass(frozen=True)
class StoredFeatures:
    patient_id: str
    values: dict[str, float | None]
    measured_at: datetime


class DynamoReader:
    """DynamoDB GetItem over urllib, SigV4-signed (inference_core.sigv4): the shape of a boto3 client's `get_item`
    (item attributes in DynamoDB's JSON), without the ≈ 180 ms a boto3 client costs a cold start."""

    def __init__(
        self,
        credentials: Credentials,
        region: str,
        endpoint: str | None = None,
        timeout: float = 5.0,
        urlopen=light_http.urlopen,
    ) -> None:
        self.credentials, self.region, self.timeout, self._urlopen = credentials, region, timeout, urlopen
        self.endpoint = (endpoint or f"https://dynamodb.{region}.amazonaws.com").rstrip("/") + "/"

    @classmethod
    def from_env(cls, environ=os.environ) -> DynamoReader | None:
        from .s3_reader import credentials_from_env

        found = credentials_from_env(environ, "DYNAMODB")
        return cls(*found) if found else None

    def get_item(self, TableName: str, Key: dict, ConsistentRead: bool = False) -> dict:
        body = json.dumps({"TableName": TableName, "Key": Key, "ConsistentRead": ConsistentRead}).encode()
        headers = {"Content-Type": "application/x-amz-json-1.0", "X-Amz-Target": "DynamoDB_20120810.GetItem"}
        signed = sign("POST", self.endpoint, self.credentials, self.region, "dynamodb", headers, body)
        prepared = urllib.request.Request(self.endpoint, data=body, headers=signed, method="POST")
        try:
            with self._urlopen(prepared, timeout=self.timeout) as response:
                doc = json.loads(response.read())
        except urllib.error.HTTPError as exc:
            try:
                kind = str(json.loads(exc.read()).get("__type", "")).rsplit("#", 1)[-1]
            except ValueError:
                kind = ""
            raise OnlineStoreError(f"DynamoDB GetItem on {TableName}: HTTP {exc.code} {kind}".strip()) from exc
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            raise OnlineStoreError(f"DynamoDB GetItem on {TableName}: {exc}") from exc
        return doc


def _binary(attribute: dict) -> bytes:
    data = attribute.get("B", b"")
    return base64.b64decode(data) if isinstance(data, str) else bytes(data)  # JSON wire: base64; boto3: bytes


class OnlineFeatures:
    """The latest materialised measurements of one patient, from the feature view's DynamoDB table."""

    def __init__(self, client, table: str) -> None:
        self.client, self.table = client, table

    def get(self, patient_id: str) -> StoredFeatures | None:
        try:
            doc = self.client.get_item(TableName=self.table, Key={"entity_id": {"S": entity_id(patient_id)}})
        except OnlineStoreError:
            raise
        except Exception as exc:  # a boto3 client's ClientError/EndpointConnectionError
            raise OnlineStoreError(f"DynamoDB GetItem on {self.table}: {exc}") from exc
        item = doc.get("Item")
        if not item:
            return None
        try:
            values = {name: decode_value(_binary(attr)) for name, attr in item.get("values", {}).get("M", {}).items()}
            measured_at = datetime.fromisoformat(item["event_ts"]["S"])
        except (UndecodableValue, KeyError, TypeError, ValueError) as exc:  # not what Feast writes: the store's fault
            raise OnlineStoreError(f"an item in {self.table} is not a Feast feature row: {exc}") from exc
        if measured_at.tzinfo is None:  # Feast writes UTC offsets; a naive time would be ambiguous
            measured_at = measured_at.replace(tzinfo=UTC)
        return StoredFeatures(patient_id, values, measured_at)
