"""Batch scoring, end to end on one file: read → validate → score → write, 1,000,000 synthetic rows drawn from
the training distribution (CSV in, Parquet + CSV + errors out, drift report included), against the same
work done with pandas + scikit-learn `predict_proba` of the same champion pipeline, in the same run. Each
side runs in its own process (both may use both cores); wall time and peak RSS per side. Ends with one JSON
line.

    BENCH_BATCH_ROWS=1000000 .venv/bin/python bench/bench_batch.py"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

ROWS = int(os.environ.get("BENCH_BATCH_ROWS", "1000000"))
# Ours: onnxruntime on one thread while a second thread reads, checks and profiles the next chunk (both cores);
# the baseline: XGBoost's predictor on two threads.
ORT_THREADS = int(os.environ.get("BENCH_ORT_THREADS", "1"))
BASELINE_THREADS = 2
BAD_FRACTION = 0.001  # out-of-range values and typing errors, so both sides exercise their error paths


def peak_rss_mb() -> float:
    """This process's peak resident memory (VmHWM). Not ru_maxrss: that keeps the parent's peak across exec."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def synthetic_csv(path: Path, features: list[str], rows: int) -> None:
    """Rows resampled from the bundled training data with a little noise; canonical column names."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.csv as pcsv

    from inference_core.schema import RANGES
    from training.data import load_bundled

    train = load_bundled("train").frame
    rng = np.random.default_rng(7)
    pick = rng.integers(0, len(train), rows)
    columns = {"patient_id": pa.array([f"P{i:07d}" for i in range(rows)])}
    for f in features:
        base = train[f].to_numpy(float)[pick]
        lo, hi = RANGES[f]
        noisy = np.clip(base + rng.normal(0, 0.02 * (hi - lo), rows), lo, hi)
        noisy = np.round(noisy, 3 if f == "diabetes_pedigree" else 1)
        text = pa.array(noisy).cast(pa.string())
        bad = rng.random(rows) < BAD_FRACTION / len(features)
        values = np.where(bad, "n/a?" if f == "age" else str(hi * 3), np.asarray(text.to_pylist(), dtype=object))
        columns[f] = pa.array(values.tolist(), pa.string()).fill_null("")
    pcsv.write_csv(pa.table(columns), path, pcsv.WriteOptions(quoting_style="none"))


def ours(data: Path, work: Path) -> dict:
    import numpy as np

    from batch_scoring.core import score_table
    from batch_scoring.drift import DriftAccumulator
    from batch_scoring.reader import open_csv
    from inference_core.contracts import ServingPointer
    from inference_core.model_store import LoadedModel, make_session

    pointer = ServingPointer.model_validate_json((work / "champion.json").read_text())
    profile = json.loads((work / "profile.json").read_text())
    t0 = time.perf_counter()
    session = make_session((work / "model.onnx").read_bytes(), ORT_THREADS)
    model = LoadedModel(pointer, session, session.get_inputs()[0].name, session.get_outputs()[-1].name, "-", 0)
    out = work / "ours"
    out.mkdir(exist_ok=True)
    drift = DriftAccumulator(profile, pointer.features, 0.2, 0.2, 100)
    with data.open("rb") as f:
        source = open_csv(f, data.name, pointer.features, "patient_id")
        summary = score_table(source, model, out, drift, frozenset({"glucose", "bmi", "age"}), True)
    wall = time.perf_counter() - t0
    peak_mb = peak_rss_mb()  # before reading the output back
    import pyarrow as pa
    import pyarrow.parquet as pq

    total = n = 0.0
    for batch in pq.ParquetFile(out / "predictions.parquet").iter_batches(columns=["probability"]):
        total += float(np.sum(batch.column(0).to_numpy()))
        n += batch.num_rows
    return {
        "peak_rss_mb": peak_mb,
        "arrow_pool_peak_mb": pa.default_memory_pool().max_memory() / 2**20,
        "wall_s": wall,
        "rows_read": summary.rows_read,
        "rows_scored": summary.rows_scored,
        "rows_rejected": summary.rows_rejected,
        "phases_s": summary.timings_s,
        "drift": summary.drift.status,
        "drifted_features": sorted(summary.drift.drifted_features),
        "mean_probability": total / n,
    }


def drift_pandas(X, profile: dict) -> dict:
    """The drift report the pandas way: per feature PSI over the reference decile bins, KS over its 101-point CDF."""
    import numpy as np

    out = {}
    for f, ref in profile["features"].items():
        present = X[f].dropna().to_numpy()
        if not len(present):
            continue
        edges = np.concatenate(([-np.inf], np.asarray(ref["bin_edges"][1:-1], float), [np.inf]))
        counts, _ = np.histogram(present, bins=edges)
        batch = np.maximum(counts / len(present), 1e-6)
        expected = np.maximum(np.asarray(ref["bin_fractions"]), 1e-6)
        psi = float(np.sum((batch - expected) * np.log(batch / expected)))
        cdf = np.searchsorted(np.sort(present), np.asarray(ref["cdf_points"]), side="right") / len(present)
        ks = float(np.max(np.abs(cdf - np.asarray(ref["cdf"]))))
        out[f] = {"psi": psi, "ks": ks, "drifted": psi > 0.2 or ks > 0.2}
    return out


def baseline(data: Path, work: Path) -> dict:
    """The same work the pandas way: read (pandas' default dtypes), the same rules, predict_proba, the drift
    report, Parquet + CSV + errors out. Imports (pandas, scikit-learn, XGBoost) happen before the timer, as ours."""
    import joblib
    import numpy as np
    import pandas as pd

    from inference_core.schema import RANGES, ZERO_MEANS_MISSING

    pointer = json.loads((work / "champion.json").read_text())
    profile = json.loads((work / "profile.json").read_text())
    features, thresholds = pointer["features"], pointer["thresholds"]
    joblib.load(work / "model.joblib")  # imports scikit-learn and XGBoost outside the timer
    t0 = time.perf_counter()
    model = joblib.load(work / "model.joblib")  # loading the model is timed on both sides
    model[-1].set_params(n_jobs=BASELINE_THREADS)
    frame = pd.read_csv(data)
    errors = []
    bad_rows = np.zeros(len(frame), bool)
    X = pd.DataFrame(index=frame.index)
    for f in features:
        values = pd.to_numeric(frame[f], errors="coerce")
        not_number = values.isna() & frame[f].notna()
        if f in ZERO_MEANS_MISSING:
            values = values.mask(values == 0)
        lo, hi = RANGES[f]
        out = (values < lo) | (values > hi)
        missing = values.isna() & ~not_number & (f in {"glucose", "bmi", "age"})
        for mask, message in ((not_number, "not a number"), (out, "out of range"), (missing, "missing")):
            idx = np.flatnonzero(mask.to_numpy())
            errors.append(pd.DataFrame({"row": idx + 1, "field": f, "message": message}))
            bad_rows[idx] = True
        X[f] = values
    valid = ~bad_rows
    proba = model.predict_proba(X[valid])[:, 1]
    drift = drift_pandas(X[valid], profile)
    band = np.where(proba >= thresholds["high"], "high", np.where(proba < thresholds["low"], "low", "moderate"))
    result = pd.DataFrame(
        {
            "row": np.flatnonzero(valid) + 1,
            "patient_id": frame["patient_id"][valid].to_numpy(),
            "probability": np.round(proba, 6),
            "risk_band": band,
        }
    )
    out = work / "baseline"
    out.mkdir(exist_ok=True)
    result.to_parquet(out / "predictions.parquet", index=False)
    result.to_csv(out / "predictions.csv", index=False)
    pd.concat(errors).sort_values("row", kind="stable").to_csv(out / "errors.csv", index=False)
    wall = time.perf_counter() - t0
    return {
        "peak_rss_mb": peak_rss_mb(),
        "wall_s": wall,
        "rows_read": len(frame),
        "rows_scored": int(valid.sum()),
        "rows_rejected": int(bad_rows.sum()),
        "mean_probability": float(proba.mean()),
        "drifted_features": sorted(f for f, d in drift.items() if d["drifted"]),
    }


def prepare(work: Path) -> Path:
    import joblib
    from champion import train_champion

    from training.profile import reference_profile

    champion = train_champion(profile_key="models/v1/reference_profile.json")
    pointer, features = champion.pointer, champion.pointer.features
    (work / "model.onnx").write_bytes(champion.onnx_bytes)
    joblib.dump(champion.pipeline, work / "model.joblib")
    (work / "profile.json").write_text(json.dumps(reference_profile(champion.valid, features)))
    (work / "champion.json").write_text(pointer.model_dump_json())
    data = work / "patients.csv"
    print(f"writing {ROWS:,} synthetic rows ...", flush=True)
    synthetic_csv(data, features, ROWS)
    return data


def run_side(side: str, data: Path, work: Path) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, side, str(data), str(work)], capture_output=True, text=True, check=False
    )
    if out.returncode:
        raise SystemExit(f"{side} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    if len(sys.argv) == 4:  # one side, in its own process
        side, data, work = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
        result = ours(data, work) if side == "ours" else baseline(data, work)
        print(json.dumps(result))
        return
    work = Path(tempfile.mkdtemp(prefix="bench-batch-"))
    data = prepare(work)
    size_mb = data.stat().st_size / 2**20
    results = {}
    for side in ("baseline", "ours"):
        print(f"running {side} ...", flush=True)
        results[side] = run_side(side, data, work)
        print(f"  {side}: {results[side]['wall_s']:.2f} s, peak {results[side]['peak_rss_mb']:.0f} MB", flush=True)
    # Memory must not grow with the file: the same rows four times over, ours only.
    big = work / "patients-x4.csv"
    with data.open("rb") as src, big.open("wb") as dst:
        header = src.readline()
        body = src.read()
        dst.write(header + body * 4)
    print("running ours on 4x the rows (memory check) ...", flush=True)
    x4 = run_side("ours", big, work)
    o, b = results["ours"], results["baseline"]
    assert o["rows_scored"] == b["rows_scored"], (o["rows_scored"], b["rows_scored"])
    assert o["drifted_features"] == b["drifted_features"], (o["drifted_features"], b["drifted_features"])
    print(
        json.dumps(
            {
                "bench": "batch",
                "rows": ROWS,
                "input_mb": round(size_mb, 1),
                "cores": os.cpu_count(),
                "ours_s": round(o["wall_s"], 2),
                "ours_rows_per_s": round(ROWS / o["wall_s"]),
                "ours_peak_rss_mb": round(o["peak_rss_mb"]),
                "ours_phases_s": o["phases_s"],
                "ours_4x_rows_s": round(x4["wall_s"], 2),
                "ours_4x_rows_peak_rss_mb": round(x4["peak_rss_mb"]),
                "baseline_s": round(b["wall_s"], 2),
                "baseline_rows_per_s": round(ROWS / b["wall_s"]),
                "baseline_peak_rss_mb": round(b["peak_rss_mb"]),
                "speedup": round(b["wall_s"] / o["wall_s"], 2),
                "rows_scored": o["rows_scored"],
                "rows_rejected": o["rows_rejected"],
                "mean_probability_diff": round(abs(o["mean_probability"] - b["mean_probability"]), 7),
                "drift": o["drift"],
            }
        )
    )


if __name__ == "__main__":
    main()
