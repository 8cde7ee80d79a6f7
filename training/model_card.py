"""The operating thresholds and the model card: plain Python, so the steps that only write a card (Register,
Promote) do not import scikit-learn and matplotlib with training.evaluate (≈ 1.5 s of their cold start)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


class Thresholds(BaseModel):
    """Operating points chosen on out-of-fold training predictions (never on the holdout).

    decision: maximises Youden's J (sensitivity + specificity - 1).
    low: below it, at most 10% of people with diabetes fall (sensitivity >= 0.90): risk band "low".
    high: at or above it, at most 10% of people without diabetes fall (specificity >= 0.90): band "high".
    """

    decision: float
    low: float
    high: float

    def band(self, probability: float) -> str:
        if probability >= self.high:
            return "high"
        if probability < self.low:
            return "low"
        return "moderate"


def model_card(
    *,
    family: str,
    version: str | None,
    metrics: dict[str, float],
    cv: dict[str, Any],
    thresholds: Thresholds,
    features: list[str],
    train_ref: dict,
    holdout_ref: dict,
    importance: dict[str, float],
    all_families: list[dict[str, Any]],
    selection: dict[str, Any] | None = None,
    calibration: dict[str, Any] | None = None,
    identity: str | None = None,
) -> str:
    from .identity import DERIVATION

    keys = (
        f"Patients and dates were derived, not recorded: {DERIVATION}. The training set is Feast's point-in-time "
        "join of the labels at `diagnosed_at` against the measurements known then."
        if identity == "derived"
        else "Patient ids and measurement dates come from the file; the training set is Feast's point-in-time join "
        "of the labels at `diagnosed_at` against the measurements known then."
    )
    rows = "\n".join(f"| {k} | {v:.4f} |" for k, v in metrics.items())
    fam_rows = "\n".join(
        f"| {f['family']} | {f['cv_auc_mean']:.4f} ± {f.get('cv_auc_se', 0.0):.4f} | "
        f"{_with_ci(f, 'roc_auc')} | {_with_ci(f, 'brier')} |"
        for f in all_families
    )
    selection = selection or {}
    repeats = selection.get("repeats", 1)
    rule = (
        f"the one-standard-error rule on repeated stratified CV ({repeats} x {selection.get('folds', 5)}-fold): "
        f"best {selection.get('best_family', '?')} {selection.get('best_cv_auc', float('nan')):.4f} "
        f"(SE {selection.get('best_cv_auc_se', float('nan')):.4f}); within one SE: "
        f"{', '.join(selection.get('within_one_se', [])) or '?'}; the simplest of those is chosen"
    )
    if calibration:
        cal = (
            f"Out-of-fold Brier {calibration['brier_raw']:.4f} raw vs {calibration['brier_calibrated']:.4f} with "
            f"cross-validated Platt scaling (expected calibration error {calibration['ece_raw']:.3f} vs "
            f"{calibration['ece_calibrated']:.3f}): "
            + (
                "scaling applied (serving applies it after the ONNX model)."
                if calibration["applied"]
                else "left uncalibrated (scaling did not help)."
            )
        )
    else:
        cal = "Not checked."
    ci = next((f.get("holdout_ci") or {} for f in all_families if f["family"] == family), {})
    top = ", ".join(k for k, _ in sorted(importance.items(), key=lambda kv: -kv[1])[:3])
    steps = "median imputation, scaling" if family == "logistic_regression" else "median imputation"
    return f"""# Model card — diabetes-risk{f" v{version}" if version else ""}

**Model:** {family} (scikit-learn Pipeline: {steps}, then the classifier), exported to ONNX.
**Selected by** {rule}. Its CV ROC AUC {cv["cv_auc_mean"]:.4f} ± {cv.get("cv_auc_se", 0.0):.4f} (SE); the
holdout was not used to choose it. **Hyper-parameters:** `{cv["best_params"]}`.

## Data
| | source | sha256 | rows |
|---|---|---|---|
| training | `{train_ref["uri"]}` | `{train_ref["sha256"]}` | {train_ref["rows"]} |
| holdout | `{holdout_ref["uri"]}` | `{holdout_ref["sha256"]}` | {holdout_ref["rows"]} |

Features: {", ".join(features)}. Recorded zeros in glucose, blood pressure, skin thickness, insulin and
BMI mean "not measured" and are imputed.

{keys}

## Holdout metrics (decision threshold {thresholds.decision:.3f})
| metric | value |
|---|---|
{rows}

95% bootstrap intervals (1,000 stratified resamples of the holdout): ROC AUC {_interval(ci.get("roc_auc"))},
Brier {_interval(ci.get("brier"))}.

## Calibration
{cal} The reliability curve is `plots/calibration.png`.

## All families
| family | CV ROC AUC ± SE | holdout ROC AUC (95% CI) | holdout Brier (95% CI) |
|---|---|---|---|
{fam_rows}

## Thresholds and risk bands
Chosen on out-of-fold training predictions. Decision {thresholds.decision:.3f} (Youden's J).
Bands: **low** p < {thresholds.low:.3f} (sensitivity ≥ 0.90 above it), **high** p ≥ {thresholds.high:.3f}
(specificity ≥ 0.90 below it), **moderate** between. Most influential features (permutation): {top}.

## Intended use
Decision support for screening adults for type 2 diabetes risk from routine measurements, to prioritise
confirmatory testing (HbA1c, fasting glucose). Not a diagnosis.

## Limits
- Trained on Pima women aged 21+ of Akimel O'odham heritage (NIDDK data, Ripley's split): performance
  on men, other populations and younger patients is unknown and likely lower; calibrate locally first.
- Small training set (a few hundred rows): metrics carry wide uncertainty (± a few AUC points).
- Inputs outside physiological ranges are refused; missing values are imputed with training medians.
- Monitor drift (population shift) and recalibrate or retrain when it rises.
"""


def _interval(ci: dict | None) -> str:
    return f"{ci['estimate']:.3f} [{ci['low']:.3f}, {ci['high']:.3f}]" if ci else "n/a"


def _with_ci(family: dict, metric: str) -> str:
    value = family.get("holdout", {}).get(metric, float("nan"))
    ci = family.get("holdout_ci", {}).get(metric)
    return f"{value:.4f} [{ci['low']:.3f}, {ci['high']:.3f}]" if ci else f"{value:.4f}"
