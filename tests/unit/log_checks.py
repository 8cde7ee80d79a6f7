"""What a test's captured logs say about a patient: the one check behind every "no patient data in logs" test."""

from __future__ import annotations

import json
import re


def patient_values_in(out: str, values: tuple[float | str, ...]) -> list:
    """Every value of the captured lines (JSON walked to its leaves, other lines whole) that is one of `values` or
    names one in its text as a token of its own. Timestamps aside: a millisecond timestamp holds any three digits
    ("138" failed CI once), and a hex tag or a longer number holding the digits is not the value either."""
    text = re.compile("|".join(rf"(?<![\w.]){re.escape(str(v))}(?![\w.])" for v in values))
    found: list = []

    def walk(node) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key.lower() != "timestamp":
                    walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)
        elif isinstance(node, str):
            if text.search(node):
                found.append(node)
        elif not isinstance(node, bool) and node in values:
            found.append(node)

    for line in out.splitlines():
        try:
            walk(json.loads(line))
        except ValueError:
            walk(line)
    return found
