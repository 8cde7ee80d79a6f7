"""Shadow scoring without slowing the answer: requests routed to the shadow leave their patients and the
champion's answers in a bounded buffer (a few microseconds), and the challenger scores the buffer in one ONNX
run when it is full or old enough. A whole window then costs one model run and one set of metrics instead of
one per request (bench/bench_predict.py measures both sides).

What is buffered when an execution environment is shut down is never scored: at most `max_rows` patients or
`max_age_s` seconds of shadow traffic per environment, counted as nothing rather than guessed."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from .contracts import Patient
from .model_store import LoadedModel
from .scoring import BANDS, feature_matrix, probabilities, risk_band_indices


@dataclass
class ShadowSummary:
    """One window of shadow traffic: how the challenger compares with what the champion answered."""

    challenger_version: str
    scored: int
    band_agreement: int
    abs_diff_sum: float
    challenger_p_sum: float  # with champion_p_sum / scored: each model's mean probability over the window
    champion_p_sum: float
    deciles: dict[int, int]  # challenger probability decile (0..9) → patients
    challenger_ms: float  # one patient, challenger alone: comparable with the champion's figure
    champion_ms: float
    rows_dropped: int = 0  # buffered rows the challenger could not score (another challenger meanwhile)


@dataclass
class ShadowBuffer:
    max_rows: int = 256
    max_age_s: float = 10.0
    clock: Callable[[], float] = time.monotonic
    patients: list[Patient] = field(default_factory=list)
    probabilities: list[float] = field(default_factory=list)
    bands: list[str] = field(default_factory=list)
    challenger_sha: str | None = None
    started: float | None = None

    def add(self, challenger_sha: str, patients: Sequence[Patient], served: Sequence) -> None:
        """The patients of one request and the champion's predictions for them (the response already built)."""
        if self.challenger_sha != challenger_sha:  # a new challenger: what was buffered belongs to the old one
            self.clear()
            self.challenger_sha = challenger_sha
        if self.started is None:
            self.started = self.clock()
        self.patients.extend(patients)
        self.probabilities.extend(p.probability for p in served)
        self.bands.extend(p.risk_band for p in served)

    def due(self) -> bool:
        return bool(self.patients) and (
            len(self.patients) >= self.max_rows or self.clock() - (self.started or 0.0) >= self.max_age_s
        )

    def clear(self) -> None:
        self.patients, self.probabilities, self.bands = [], [], []
        self.started = None

    def score(self, challenger: LoadedModel, champion: LoadedModel) -> ShadowSummary | None:
        """The challenger on everything buffered (one run), compared with the champion's answers; empties the buffer."""
        if not self.patients:
            return None
        if challenger.pointer.onnx_sha256 != self.challenger_sha:
            dropped = len(self.patients)
            self.clear()
            self.challenger_sha = challenger.pointer.onnx_sha256
            return ShadowSummary(challenger.pointer.model_version, 0, 0, 0.0, 0.0, 0.0, {}, 0.0, 0.0, dropped)
        patients, served, bands = self.patients, np.asarray(self.probabilities), self.bands
        self.clear()
        X = feature_matrix(patients, challenger.pointer.features)
        proba = np.clip(probabilities(challenger, X), 0.0, 1.0)
        mine = risk_band_indices(proba, challenger.pointer.thresholds)
        agreement = sum(1 for i, band in zip(mine, bands, strict=True) if BANDS[i] == band)
        deciles = np.bincount(np.minimum((proba * 10).astype(int), 9), minlength=10)
        return ShadowSummary(
            challenger_version=challenger.pointer.model_version,
            scored=len(patients),
            band_agreement=agreement,
            abs_diff_sum=float(np.abs(proba - served).sum()),
            challenger_p_sum=float(proba.sum()),
            champion_p_sum=float(served.sum()),
            deciles={i: int(n) for i, n in enumerate(deciles) if n},
            challenger_ms=_one_row_ms(challenger, patients[0]),
            champion_ms=_one_row_ms(champion, patients[0]),
        )


def _one_row_ms(model: LoadedModel, patient: Patient) -> float:
    X = feature_matrix([patient], model.pointer.features)
    started = time.perf_counter()
    probabilities(model, X)
    return (time.perf_counter() - started) * 1000
