"""Canonical features, their physiological ranges, and the names known source formats use for them.

Plain Python on purpose: training validates with these ranges (through pandera) and serving validates
with the same ranges (through pydantic), so the two cannot drift apart.
"""

from __future__ import annotations

from typing import Final

FEATURES: Final = (
    "pregnancies",
    "glucose",
    "blood_pressure",
    "skin_thickness",
    "insulin",
    "bmi",
    "diabetes_pedigree",
    "age",
)
LABEL: Final = "diabetes"

# Features a row may lack: the model imputes them. Insulin is often not measured at all.
OPTIONAL_FEATURES: Final = frozenset({"insulin"})

# Inclusive physiological ranges (units: count, mg/dL, mmHg, mm, µU/mL, kg/m², -, years). Wide enough
# for real patients, narrow enough to catch unit mix-ups and typing errors.
RANGES: Final[dict[str, tuple[float, float]]] = {
    "pregnancies": (0, 20),
    "glucose": (40, 400),
    "blood_pressure": (20, 180),
    "skin_thickness": (3, 110),
    "insulin": (5, 1000),
    "bmi": (10, 80),
    "diabetes_pedigree": (0.05, 3.0),
    "age": (18, 120),
}

# A recorded 0 is physiologically impossible for these: in the Kaggle/NIDDK export it means "missing".
ZERO_MEANS_MISSING: Final = frozenset({"glucose", "blood_pressure", "skin_thickness", "insulin", "bmi"})

SOURCE_FORMATS: Final[dict[str, dict[str, str]]] = {
    "mass": {
        "npreg": "pregnancies",
        "glu": "glucose",
        "bp": "blood_pressure",
        "skin": "skin_thickness",
        "bmi": "bmi",
        "ped": "diabetes_pedigree",
        "age": "age",
        "type": LABEL,
    },
    "kaggle": {
        "Pregnancies": "pregnancies",
        "Glucose": "glucose",
        "BloodPressure": "blood_pressure",
        "SkinThickness": "skin_thickness",
        "Insulin": "insulin",
        "BMI": "bmi",
        "DiabetesPedigreeFunction": "diabetes_pedigree",
        "Age": "age",
        "Outcome": LABEL,
    },
}

# Label spellings seen in the sources, mapped to 0/1.
LABEL_VALUES: Final[dict[str, int]] = {
    "0": 0,
    "1": 1,
    "no": 0,
    "yes": 1,
    "neg": 0,
    "pos": 1,
    "false": 0,
    "true": 1,
    "0.0": 0,
    "1.0": 1,
}


def detect_format(columns: list[str]) -> str:
    """Which known export a header comes from: four or more of its column names decide."""
    cols = set(columns)
    for fmt, mapping in SOURCE_FORMATS.items():
        if len(cols & set(mapping)) >= 4:
            return fmt
    return "canonical"


def canonical_names(columns: list[str]) -> tuple[str, dict[str, str]]:
    """The source format and each column's canonical name (known source names mapped, others lower-cased)."""
    fmt = detect_format(columns)
    mapping = SOURCE_FORMATS.get(fmt, {})
    return fmt, {c: mapping.get(c, c).strip().lower() for c in columns}
