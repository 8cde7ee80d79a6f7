"""The S3 side of batch scoring: one object version in inbox/ becomes one result in outbox/<name>/.

S3 delivers notifications at least once, so the result name comes from the key and the object's version
(or ETag): a repeated delivery finds the manifest and does nothing. Concurrent deliveries of one version are kept
apart by the handler (Powertools idempotency on DynamoDB, whose in-progress record expires with the invocation,
so a retry after a timeout or an out-of-memory kill proceeds). The manifest is written last; a failure leaves
failed.json and no manifest. Files that are not readable tables
move to quarantine/<name>/ with the reason: nothing is deleted for good (the inbox bucket is versioned)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import shutil
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from botocore.exceptions import ClientError
from pydantic import BaseModel

from inference_core.feature_layout import ingested_key, partition_key
from inference_core.model_store import ModelStore, ModelUnavailable
from inference_core.schema import OPTIONAL_FEATURES

from .core import ScoreSummary, score_table
from .drift import DriftAccumulator
from .measurements import FeatureStoreWrite, MeasurementSink
from .naming import (  # noqa: F401 - re-exported: callers name results through the service too
    FAILED,
    INBOX,
    MANIFEST,
    MAX_STEM,
    OUTBOX,
    QUARANTINE,
    file_name,
    result_name,
)
from .objects import get_json, missing
from .reader import SNIFF_BYTES, PeekReader, UnreadableFile, open_csv, open_parquet, sniff
from .settings import BatchSettings


class InputTooLarge(ValueError):
    """Larger than one invocation is allowed to take on."""


class InputRef(BaseModel):
    bucket: str
    key: str
    version_id: str | None
    etag: str
    bytes: int
    sha256: str | None = None


class ModelRef(BaseModel):
    name: str
    version: str
    family: str
    onnx_sha256: str
    features: list[str]
    thresholds: dict[str, float]


class ChallengerRef(BaseModel):
    version: str
    family: str
    onnx_sha256: str
    column: str = "challenger_probability"


class Manifest(ScoreSummary):
    name: str
    input: InputRef
    model: ModelRef
    challenger: ChallengerRef | None = None  # scored beside the champion: its probability is one more column
    features: FeatureStoreWrite | None = None  # what the rows with patient ids added to the feature store
    output_keys: dict[str, str]
    training_execution_arn: str | None = None
    started_at: str
    finished_at: str


class Failure(BaseModel):
    name: str
    input: InputRef
    kind: Literal["unreadable", "too_large", "no_model", "internal"]
    reason: str
    quarantined_to: str | None = None
    at: str


class BatchOutcome(BaseModel):
    status: Literal["scored", "duplicate", "in_progress", "quarantined", "failed", "gone"]
    name: str | None = None
    prefix: str | None = None
    manifest: Manifest | None = None
    failure: Failure | None = None


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class HashingReader:
    """Reads the S3 body once: sha256 and byte count as it streams."""

    def __init__(self, body) -> None:
        self.body, self.sha, self.bytes = body, hashlib.sha256(), 0

    def read(self, n: int = -1) -> bytes:
        data = self.body.read(n if n and n > 0 else None)
        self.sha.update(data)
        self.bytes += len(data)
        return data

    def drain(self) -> None:
        while self.read(1 << 20):
            pass


class BatchScorer:
    """Holds the clients and the model store for a container; `batch_score` handles one S3 object."""

    def __init__(self, s3, settings: BatchSettings, store: ModelStore, sfn=None) -> None:
        self.s3, self.settings, self.store, self.sfn = s3, settings, store, sfn
        self.bucket = settings.batch_bucket

    # --- S3 helpers -------------------------------------------------------------------------------------
    def _exists(self, key: str) -> bool:
        try:
            self.s3.head_object(Bucket=self.bucket, Key=key)
            return True
        except ClientError as exc:
            if missing(exc):
                return False
            raise

    def _get_json(self, key: str) -> dict | None:
        return get_json(self.s3, self.bucket, key)

    def _put_json(self, key: str, body: BaseModel | dict) -> None:
        data = body.model_dump_json(indent=2) if isinstance(body, BaseModel) else json.dumps(body)
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=data.encode(), ContentType="application/json")

    # --- one object ---------------------------------------------------------------------------------------
    def batch_score(self, key: str, version_id: str | None = None) -> BatchOutcome:
        try:
            head = self.s3.head_object(Bucket=self.bucket, Key=key, **({"VersionId": version_id} if version_id else {}))
        except ClientError as exc:
            if missing(exc) or exc.response["Error"]["Code"] in ("405", "MethodNotAllowed"):  # a delete marker
                return BatchOutcome(status="gone")
            raise
        version = head.get("VersionId")
        version = None if version in (None, "null") else version
        ref = InputRef(
            bucket=self.bucket, key=key, version_id=version, etag=head["ETag"].strip('"'), bytes=head["ContentLength"]
        )
        arrived = head.get("LastModified") or datetime.now(UTC)  # the measurement time of rows without a date
        name = result_name(key, version, ref.etag)
        prefix = f"{OUTBOX}{name}/"
        if self._exists(prefix + MANIFEST):
            if self.settings.data_bucket:  # committed, but perhaps stopped before the marker: the online refresh
                done = self._get_json(prefix + MANIFEST)
                self._ensure_marker(Manifest.model_validate(done) if done else None)
            return BatchOutcome(status="duplicate", name=name, prefix=prefix)
        previous = self._get_json(prefix + FAILED)
        if previous and previous.get("kind") == "unreadable":  # moved to quarantine: the same bytes, the same answer
            return BatchOutcome(status="duplicate", name=name, prefix=prefix, failure=Failure(**previous))
        started = _now()
        try:
            manifest = self._score(ref, name, prefix, started, arrived)
        except UnreadableFile as exc:
            failure = self._quarantine(ref, name, prefix, str(exc))
            return BatchOutcome(status="quarantined", name=name, prefix=prefix, failure=failure)
        except InputTooLarge as exc:
            failure = self._fail(ref, name, prefix, "too_large", str(exc))
            return BatchOutcome(status="failed", name=name, prefix=prefix, failure=failure)
        except ModelUnavailable as exc:  # perhaps for a moment (S3, a model being published): Lambda retries
            self._fail(ref, name, prefix, "no_model", str(exc))
            raise
        except Exception as exc:
            self._fail(ref, name, prefix, "internal", f"{type(exc).__name__}: {exc}")
            raise  # the platform retries the invocation; no manifest was written
        self._ensure_marker(manifest)  # after the commit: S3 starts the online refresh from it
        return BatchOutcome(status="scored", name=name, prefix=prefix, manifest=manifest)

    def _ensure_marker(self, manifest: Manifest | None) -> None:
        """The marker of a committed batch that added measurements, written if it is not there yet. A failure here
        propagates (the invocation is retried, finds the manifest, and comes back here)."""
        stored = manifest.features if manifest else None
        if stored is None or not stored.ingested_marker or not self.settings.data_bucket:
            return
        try:
            self.s3.head_object(Bucket=self.settings.data_bucket, Key=stored.ingested_marker)
            return
        except ClientError as exc:
            if not missing(exc):
                raise
        body = {"source": manifest.name, "rows": stored.rows_stored, "days": stored.days}
        self.s3.put_object(
            Bucket=self.settings.data_bucket,
            Key=stored.ingested_marker,
            Body=json.dumps(body).encode(),
            ContentType="application/json",
        )

    def _score(self, ref: InputRef, name: str, prefix: str, started: str, arrived: datetime) -> Manifest:
        s = self.settings
        t0 = time.perf_counter()
        if ref.bytes > s.max_input_bytes:
            raise InputTooLarge(
                f"the file is {ref.bytes / 2**30:.2f} GiB; one invocation takes at most "
                f"{s.max_input_bytes / 2**30:.2f} GiB (DR_MAX_INPUT_BYTES). Split it into several files and drop "
                "each into inbox/"
            )
        model = self.store.get()
        challenger = self.store.challenger()
        if challenger is not None and challenger.pointer.features != model.pointer.features:
            challenger = None  # measured on other features: the rows as checked for the champion do not fit it
        profile = self._profile(model.pointer.profile_key)
        drift = DriftAccumulator(profile, model.pointer.features, s.psi_threshold, s.ks_threshold, s.drift_min_rows)
        required = [f for f in model.pointer.features if f not in OPTIONAL_FEATURES or f in s.required_values]

        with tempfile.TemporaryDirectory(prefix="batch-", dir=s.work_dir) as tmp:
            work = Path(tmp)
            obj = self.s3.get_object(
                Bucket=self.bucket, Key=ref.key, **({"VersionId": ref.version_id} if ref.version_id else {})
            )
            body = HashingReader(obj["Body"])
            stream = PeekReader(body)
            kind = sniff(stream.peek(SNIFF_BYTES), ref.key)
            timings = {}
            if kind == "parquet":  # Parquet needs random access (its index is at the end): spool to disk
                spooled = work / "input.parquet"
                with spooled.open("wb") as f:
                    shutil.copyfileobj(stream, f, 8 << 20)
                timings["download"] = round(time.perf_counter() - t0, 4)
                source = open_parquet(str(spooled), required, s.id_column, s.chunk_rows)
            else:
                source = open_csv(stream, ref.key, required, s.id_column, s.csv_block_bytes)
            out = work / "out"
            out.mkdir()
            sink = (
                MeasurementSink(work / "measurements", name, arrived, source.date_column)
                if s.data_bucket and source.id_column
                else None
            )
            summary = score_table(
                source, model, out, drift, s.required_values, kind == "csv", challenger=challenger, measurements=sink
            )
            body.drain()
            ref = ref.model_copy(update={"sha256": body.sha.hexdigest()})
            training_arn = self._maybe_retrain(summary, name)
            t1 = time.perf_counter()
            keys = {f: prefix + f for f in summary.outputs}
            stored = self._store_measurements(sink) if sink is not None else None
            try:
                for file, key in keys.items():
                    self.s3.upload_file(str(out / file), self.bucket, key)
                timings["upload"] = round(time.perf_counter() - t1, 4)
                timings["total"] = round(time.perf_counter() - t0, 4)
                manifest = Manifest(
                    **summary.model_dump(exclude={"timings_s"}),
                    timings_s={**summary.timings_s, **timings},
                    name=name,
                    input=ref,
                    model=ModelRef(
                        name=model.pointer.model_name,
                        version=model.pointer.model_version,
                        family=model.pointer.family,
                        onnx_sha256=model.pointer.onnx_sha256,
                        features=model.pointer.features,
                        thresholds=model.pointer.thresholds,
                    ),
                    challenger=(
                        ChallengerRef(
                            version=challenger.pointer.model_version,
                            family=challenger.pointer.family,
                            onnx_sha256=challenger.pointer.onnx_sha256,
                        )
                        if challenger
                        else None
                    ),
                    features=stored,
                    output_keys=keys,
                    training_execution_arn=training_arn,
                    started_at=started,
                    finished_at=_now(),
                )
                self._put_json(prefix + MANIFEST, manifest)  # the commit marker: written last
            except Exception:
                self._delete(list(keys.values()))
                raise
        self._delete([prefix + FAILED])
        return manifest

    def _store_measurements(self, sink: MeasurementSink) -> FeatureStoreWrite:
        """The kept rows into the offline store (data bucket), under keys named by the result: a retry rewrites the
        same objects. The marker that starts the online refresh is written after the manifest."""
        summary = sink.summary()
        keys = []
        for day, paths in sorted(sink.files.items()):
            for path in paths:
                key = partition_key(day, f"{sink.source}-{path.stem}")
                self.s3.upload_file(str(path), self.settings.data_bucket, key)
                keys.append(key)
        marker = ingested_key(summary.days[0], sink.source) if summary.days else None
        return summary.model_copy(update={"keys": keys, "ingested_marker": marker})

    def _profile(self, key: str) -> dict | None:
        try:
            return json.loads(self.s3.get_object(Bucket=self.settings.artifacts_bucket, Key=key)["Body"].read())
        except (ClientError, ValueError):
            return None  # drift is then reported as "no_profile"; scoring goes on

    def _maybe_retrain(self, summary: ScoreSummary, name: str) -> str | None:
        s = self.settings
        if summary.drift.status != "drift" or not (s.drift_starts_training and s.state_machine_arn and self.sfn):
            return None
        execution = re.sub(r"[^A-Za-z0-9_-]", "-", f"drift-{name}")[-80:]
        payload = {"train_uri": s.drift_train_uri, "holdout_uri": "bundled", "reason": f"drift in batch {name}"}
        try:
            return self.sfn.start_execution(
                stateMachineArn=s.state_machine_arn, name=execution, input=json.dumps(payload)
            )["executionArn"]
        except self.sfn.exceptions.ExecutionAlreadyExists:
            return s.state_machine_arn.replace(":stateMachine:", ":execution:") + f":{execution}"

    def _delete(self, keys: list[str]) -> None:
        for key in keys:
            with contextlib.suppress(ClientError):
                self.s3.delete_object(Bucket=self.bucket, Key=key)

    def _fail(self, ref: InputRef, name: str, prefix: str, kind: str, reason: str, moved: str | None = None) -> Failure:
        failure = Failure(name=name, input=ref, kind=kind, reason=reason, quarantined_to=moved, at=_now())
        self._put_json(prefix + FAILED, failure)
        return failure

    def _quarantine(self, ref: InputRef, name: str, prefix: str, reason: str) -> Failure:
        target = f"{QUARANTINE}{name}/{file_name(ref.key)}"
        source = {"Bucket": self.bucket, "Key": ref.key, **({"VersionId": ref.version_id} if ref.version_id else {})}
        self.s3.copy(source, self.bucket, target)  # managed copy: multipart above 5 GB
        self._put_json(f"{QUARANTINE}{name}/reason.json", {"input": ref.model_dump(), "reason": reason, "at": _now()})
        self.s3.delete_object(Bucket=self.bucket, Key=ref.key)  # a delete marker: the version stays
        return self._fail(ref, name, prefix, "unreadable", reason, moved=target)


def summary_line(manifest: Manifest) -> str:
    return (
        f"{manifest.rows_scored}/{manifest.rows_read} rows scored, {manifest.rows_rejected} rejected, "
        f"model v{manifest.model.version}, drift {manifest.drift.status}"
    )
