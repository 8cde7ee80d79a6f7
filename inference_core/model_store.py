"""Load the champion ONNX model once per container and keep it fresh; the challenger too, lazily.

The serving pointer is re-read at most every `refresh_s` seconds; a new champion is loaded, its sha256
checked, and swapped in. A failed load keeps serving the previous model; with no model at all,
`ModelUnavailable` says why (the API answers 503). The challenger is loaded on its first use (shadow, canary
or batch) with the same checks; if it cannot be loaded the champion answers alone."""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import onnxruntime as ort

from .contracts import ModelRef, ServingPointer

LOG = logging.getLogger(__name__)
POINTER_KEY = "serving/champion.json"


class ModelUnavailable(RuntimeError):
    """No champion model can be served (none published yet, or it could not be loaded)."""


@dataclass(frozen=True)
class LoadedModel:
    pointer: ServingPointer | ModelRef  # the champion's is the whole serving pointer; a challenger's its ModelRef
    session: ort.InferenceSession
    input_name: str
    probability_output: str
    etag: str
    loaded_at: float


def make_session(model_bytes: bytes, threads: int = 1) -> ort.InferenceSession:
    options = ort.SessionOptions()
    # Set explicitly: on Lambda the default thread-affinity probe fails.
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return ort.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])


class ModelStore:
    def __init__(
        self,
        s3,
        bucket: str,
        pointer_key: str = POINTER_KEY,
        refresh_s: float = 60.0,
        threads: int = 1,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.s3, self.bucket, self.pointer_key = s3, bucket, pointer_key
        self.refresh_s, self.threads, self.clock = refresh_s, threads, clock
        self._model: LoadedModel | None = None
        self._challenger: LoadedModel | None = None
        self._challenger_failed: str | None = None  # the sha256 that failed: not retried until the pointer changes
        self._checked_at: float | None = None
        self._last_error: str | None = None
        self._lock = threading.Lock()

    @property
    def last_error(self) -> str | None:
        return self._last_error

    def get(self) -> LoadedModel:
        now = self.clock()
        if self._checked_at is None or now - self._checked_at >= self.refresh_s:
            with self._lock:
                if self._checked_at is None or now - self._checked_at >= self.refresh_s:
                    self._checked_at = now
                    self._refresh()
        if self._model is None:
            raise ModelUnavailable(self._last_error or "no champion model has been published yet")
        return self._model

    def _refresh(self) -> None:
        try:
            head = self.s3.get_object(Bucket=self.bucket, Key=self.pointer_key)
        except self.s3.exceptions.NoSuchKey:
            self._last_error = "no champion model has been published yet (run training first)"
            return
        except Exception as exc:  # S3 down, no permission: keep what we have
            # what callers see names no bucket, account or exception text; the log has the detail
            self._last_error = "the model pointer could not be read (the function's log has the reason)"
            LOG.warning("model pointer unreadable; keeping the current model", extra={"error": str(exc)})
            return
        etag = head.get("ETag", "")
        if self._model is not None and etag == self._model.etag:
            head["Body"].close()
            return
        try:
            pointer = ServingPointer.model_validate_json(head["Body"].read())
            current = self._model
            if current is not None and current.pointer.onnx_sha256 == pointer.onnx_sha256:
                # same champion, new rollout or challenger: no reload, only the description changes
                model = LoadedModel(
                    pointer, current.session, current.input_name, current.probability_output, etag, current.loaded_at
                )
            else:
                model = self._load(pointer, etag)
        except Exception as exc:
            self._last_error = "the champion model could not be loaded (the function's log has the reason)"
            LOG.error("model load failed; keeping the current model", extra={"error": str(exc)})
            return
        previous = self._model.pointer.model_version if self._model else None
        self._model, self._last_error = model, None
        self._challenger_failed = None
        if previous != pointer.model_version:
            LOG.info("model loaded", extra={"model_version": pointer.model_version, "previous_version": previous})

    def _load(self, ref: ModelRef, etag: str) -> LoadedModel:
        """Fetch, check the sha256, open, and prove the model scores one row before anything uses it."""
        model_bytes = self.s3.get_object(Bucket=self.bucket, Key=ref.onnx_key)["Body"].read()
        digest = hashlib.sha256(model_bytes).hexdigest()
        if digest != ref.onnx_sha256:
            raise ValueError(f"sha256 of {ref.onnx_key} is {digest[:12]}…, pointer says {ref.onnx_sha256[:12]}…")
        session = make_session(model_bytes, self.threads)
        outputs = [o.name for o in session.get_outputs()]
        probability = "probabilities" if "probabilities" in outputs else outputs[-1]
        model = LoadedModel(ref, session, session.get_inputs()[0].name, probability, etag, time.time())
        model.session.run([probability], {model.input_name: np.zeros((1, len(ref.features)), np.float32)})
        return model

    def challenger(self) -> LoadedModel | None:
        """The pointer's challenger, loaded on first use; None when there is none or it cannot be loaded."""
        champion = self.get()
        ref = getattr(champion.pointer, "challenger", None)
        if ref is None:
            return None
        loaded = self._challenger
        if loaded is not None and loaded.pointer.onnx_sha256 == ref.onnx_sha256:
            return loaded
        if self._challenger_failed == ref.onnx_sha256:
            return None
        with self._lock:
            loaded = self._challenger
            if loaded is not None and loaded.pointer.onnx_sha256 == ref.onnx_sha256:
                return loaded
            try:
                self._challenger = self._load(ref, champion.etag)
            except Exception as exc:
                self._challenger_failed = ref.onnx_sha256
                LOG.error("challenger load failed; the champion answers alone", extra={"error": str(exc)})
                return None
            LOG.info("challenger loaded", extra={"model_version": ref.model_version})
            return self._challenger
