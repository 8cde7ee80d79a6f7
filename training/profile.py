"""Reference profile of the training data: per-feature quantiles and bins, for drift checks at serving."""

from __future__ import annotations

import numpy as np
import pandas as pd

QUANTILES = (0.0, 0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 1.0)


def reference_profile(frame: pd.DataFrame, features: list[str]) -> dict:
    """Plain JSON: the serving side compares batches against it with numpy only (PSI on decile bins,
    KS against the quantile function)."""
    profile: dict = {"rows": len(frame), "quantile_levels": list(QUANTILES), "features": {}}
    for name in features:
        values = frame[name].to_numpy(dtype=float)
        present = values[~np.isnan(values)]
        if not len(present):
            continue
        edges = np.unique(np.quantile(present, np.linspace(0, 1, 11)))
        counts, _ = np.histogram(present, bins=edges)
        grid = np.unique(np.quantile(present, np.linspace(0, 1, 101)))
        profile["features"][name] = {
            "quantiles": [float(q) for q in np.quantile(present, QUANTILES)],
            "mean": float(present.mean()),
            "std": float(present.std()),
            "missing_rate": float(1 - len(present) / len(values)),
            "bin_edges": [float(e) for e in edges],
            "bin_fractions": [float(c) / len(present) for c in counts],
            # The empirical CDF at 101 quantile points: a batch's KS statistic is taken over these points.
            "cdf_points": [float(x) for x in grid],
            "cdf": [float(np.mean(present <= x)) for x in grid],
        }
    return profile
