"""Prometheus remote write 1.0: a protobuf `WriteRequest`, snappy-compressed, POSTed with a short timeout.

The message types are built from a descriptor at import (protobuf's runtime, no generated code to keep in
sync); snappy comes from cramjam. Amazon Managed Service for Prometheus needs SigV4 (service `aps`), signed
with botocore, which every Lambda runtime has."""

from __future__ import annotations

import functools
import http.client
import urllib.error
import urllib.request
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

import cramjam
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

from .emf import Sample

_F = descriptor_pb2.FieldDescriptorProto


def _message_classes():
    """prometheus.WriteRequest / TimeSeries / Label / Sample, field numbers as in prompb/remote.proto."""
    proto = descriptor_pb2.FileDescriptorProto(name="dr_prompb.proto", package="prometheus", syntax="proto3")

    def message(name: str, fields: list[tuple[str, int, int, int, str | None]]) -> None:
        msg = proto.message_type.add(name=name)
        for field_name, number, ftype, label, type_name in fields:
            f = msg.field.add(name=field_name, number=number, type=ftype, label=label)
            if type_name:
                f.type_name = type_name

    opt, rep = _F.LABEL_OPTIONAL, _F.LABEL_REPEATED
    message("Label", [("name", 1, _F.TYPE_STRING, opt, None), ("value", 2, _F.TYPE_STRING, opt, None)])
    message("Sample", [("value", 1, _F.TYPE_DOUBLE, opt, None), ("timestamp", 2, _F.TYPE_INT64, opt, None)])
    message(
        "TimeSeries",
        [
            ("labels", 1, _F.TYPE_MESSAGE, rep, ".prometheus.Label"),
            ("samples", 2, _F.TYPE_MESSAGE, rep, ".prometheus.Sample"),
        ],
    )
    message("WriteRequest", [("timeseries", 1, _F.TYPE_MESSAGE, rep, ".prometheus.TimeSeries")])
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("prometheus.WriteRequest"))


WriteRequest = _message_classes()


def encode(samples: Iterable[Sample]) -> bytes:
    """Snappy-compressed WriteRequest: one time series per (name, labels), samples in time order."""
    series: dict[tuple, list[tuple[int, float]]] = defaultdict(list)
    for s in samples:
        series[(s.name, s.labels)].append((s.timestamp_ms, s.value))
    request = WriteRequest()
    for (name, labels), points in series.items():
        ts = request.timeseries.add()
        for key, value in sorted((("__name__", name), *labels)):
            ts.labels.add(name=key, value=value)
        for timestamp, value in sorted(points):
            ts.samples.add(value=value, timestamp=timestamp)
    return bytes(cramjam.snappy.compress_raw(request.SerializeToString()))


def decode(body: bytes):
    """The WriteRequest in a body (tests and the local receiver's checks)."""
    request = WriteRequest()
    request.ParseFromString(bytes(cramjam.snappy.decompress_raw(body)))
    return request


@dataclass
class WriteResult:
    ok: bool
    status: int  # HTTP status, 0 when the server could not be reached
    retryable: bool  # connection errors, timeouts, 429 and 5xx: worth sending again later
    detail: str = ""


HEADERS = {
    "Content-Encoding": "snappy",
    "Content-Type": "application/x-protobuf",
    "X-Prometheus-Remote-Write-Version": "0.1.0",
    "User-Agent": "diabetes-risk-metrics-bridge",
}


@functools.cache
def _botocore_session():
    import botocore.session

    return botocore.session.get_session()


def sigv4_headers(url: str, body: bytes, region: str) -> dict[str, str]:
    """Headers signed for Amazon Managed Service for Prometheus with the function's credentials."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest

    credentials = _botocore_session().get_credentials()  # refreshable credentials, resolved once per container
    request = AWSRequest(method="POST", url=url, data=body, headers=dict(HEADERS))
    SigV4Auth(credentials, "aps", region).add_auth(request)
    return dict(request.headers.items())


_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def retryable(status: int) -> bool:
    """Worth sending again later: unreachable (0), throttled (429) or a server error (5xx)."""
    return status == 0 or status == 429 or status >= 500


def send(url: str, body: bytes, timeout_s: float, sigv4_region: str | None = None) -> WriteResult:
    try:
        headers = sigv4_headers(url, body, sigv4_region) if sigv4_region else dict(HEADERS)
    except Exception as exc:  # no credentials yet (or a signing bug): keep the samples, try again later
        return WriteResult(False, 0, True, f"could not sign the request: {type(exc).__name__}: {exc}")
    request = urllib.request.Request(url, data=body, method="POST", headers=headers)
    try:
        with _OPENER.open(request, timeout=timeout_s) as response:
            response.read()
            return WriteResult(True, response.status, False)
    except urllib.error.HTTPError as exc:
        try:
            detail = exc.read(500).decode(errors="replace").strip()
        except (OSError, http.client.HTTPException):
            detail = ""
        return WriteResult(False, exc.code, retryable(exc.code), detail)
    except (urllib.error.URLError, OSError, ValueError, http.client.HTTPException) as exc:
        reason = getattr(exc, "reason", exc)
        return WriteResult(False, 0, True, f"{type(reason).__name__}: {reason}")
