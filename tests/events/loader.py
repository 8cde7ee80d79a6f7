"""Sample events as JSON files next to this module, loaded by name: `load_event("s3_put_incoming")`."""

from __future__ import annotations

import copy
import json
from functools import cache
from pathlib import Path

EVENTS = Path(__file__).parent


@cache
def _read(name: str) -> dict:
    return json.loads((EVENTS / f"{name}.json").read_text())


def load_event(name: str, **overrides) -> dict:
    """A fresh copy of the event, with top-level keys replaced by `overrides`."""
    event = copy.deepcopy(_read(name))
    event.update(overrides)
    return event
