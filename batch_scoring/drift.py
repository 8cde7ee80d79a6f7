"""Drift of a batch against the champion's reference profile, accumulated chunk by chunk (bounded memory).

PSI over the reference decile bins (values outside the training range fall into the end bins), and the
Kolmogorov-Smirnov statistic taken over the reference's 101 CDF points: max |F_batch(x) - F_train(x)|."""

from __future__ import annotations

import math

import numpy as np
from pydantic import BaseModel

EPS = 1e-4


class FeatureDrift(BaseModel):
    psi: float
    ks: float
    rows: int
    batch_missing_rate: float
    reference_missing_rate: float
    drifted: bool


class DriftReport(BaseModel):
    status: str  # "ok" | "drift" | "too_few_rows" | "no_profile"
    psi_threshold: float
    ks_threshold: float
    min_rows: int
    drifted_features: list[str]
    features: dict[str, FeatureDrift]


class DriftAccumulator:
    def __init__(
        self, profile: dict | None, features: list[str], psi_threshold: float, ks_threshold: float, min_rows: int
    ) -> None:
        self.profile = (profile or {}).get("features", {})
        self.features = [f for f in features if f in self.profile]
        self.psi_threshold, self.ks_threshold, self.min_rows = psi_threshold, ks_threshold, min_rows
        self.has_profile = bool(profile)
        self._bins, self._grid, self._ref_cdf = {}, {}, {}
        self._bin_counts, self._le_counts, self._present, self._total = {}, {}, {}, 0
        for f in self.features:
            ref = self.profile[f]
            self._bins[f] = np.asarray(ref["bin_edges"][1:-1], float)
            if "cdf_points" in ref:
                self._grid[f], self._ref_cdf[f] = np.asarray(ref["cdf_points"]), np.asarray(ref["cdf"])
            else:  # an older profile: its quantiles are the CDF points
                self._grid[f], self._ref_cdf[f] = np.asarray(ref["quantiles"]), np.asarray(profile["quantile_levels"])
            self._bin_counts[f] = np.zeros(len(ref["bin_fractions"]), np.int64)
            self._le_counts[f] = np.zeros(len(self._grid[f]), np.int64)
            self._present[f] = 0

    def update(self, columns: dict[str, np.ndarray]) -> None:
        """Add the valid rows of a chunk: float64 values per feature, NaN where missing (imputed)."""
        if not columns:
            return
        self._total += len(next(iter(columns.values())))
        for f in self.features:
            if f not in columns:
                continue
            v = columns[f]
            nan = int(np.isnan(v).sum())
            self._present[f] += len(v) - nan
            bins = len(self._bin_counts[f])
            # NaN sorts after everything: it lands in the last slot and is taken out again.
            idx = np.searchsorted(self._bins[f], v, side="right")
            counts = np.bincount(idx, minlength=bins)
            counts[bins - 1] -= nan
            self._bin_counts[f] += counts[:bins]
            pos = np.searchsorted(self._grid[f], v, side="left")  # v <= grid[k] for every k >= pos
            self._le_counts[f] += np.cumsum(np.bincount(pos, minlength=len(self._grid[f]) + 1))[: len(self._grid[f])]

    def report(self) -> DriftReport:
        features: dict[str, FeatureDrift] = {}
        for f in self.features:
            n = self._present[f]
            ref = self.profile[f]
            if n:
                batch = np.maximum(self._bin_counts[f] / n, EPS)
                expected = np.maximum(np.asarray(ref["bin_fractions"]), EPS)
                psi = float(np.sum((batch - expected) * np.log(batch / expected)))
                ks = float(np.max(np.abs(self._le_counts[f] / n - self._ref_cdf[f])))
            else:
                psi, ks = math.nan, math.nan
            enough = n >= self.min_rows
            features[f] = FeatureDrift(
                psi=round(psi, 6) if n else 0.0,
                ks=round(ks, 6) if n else 0.0,
                rows=n,
                batch_missing_rate=round(1 - n / self._total, 6) if self._total else 0.0,
                reference_missing_rate=ref.get("missing_rate", 0.0),
                drifted=bool(enough and (psi > self.psi_threshold or ks > self.ks_threshold)),
            )
        drifted = [f for f, d in features.items() if d.drifted]
        if not self.has_profile:
            status = "no_profile"
        elif self._total < self.min_rows:
            status = "too_few_rows"
        else:
            status = "drift" if drifted else "ok"
        return DriftReport(
            status=status,
            psi_threshold=self.psi_threshold,
            ks_threshold=self.ks_threshold,
            min_rows=self.min_rows,
            drifted_features=drifted,
            features=features,
        )
