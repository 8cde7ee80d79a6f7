"""Where a batch's results go: names derived from the input's key and object version. Standard library only, so
the CLI and the console can name a result without loading the scoring stack."""

from __future__ import annotations

import hashlib
import re

INBOX, OUTBOX, QUARANTINE = "inbox/", "outbox/", "quarantine/"
MANIFEST, FAILED = "manifest.json", "failed.json"


MAX_STEM = 200  # S3 keys stop at 1,024 bytes: outbox/<name>/<file> and quarantine/<name>/<file> stay well inside


def result_name(key: str, version_id: str | None, etag: str) -> str:
    """inbox/clinic/day 1.csv + version → clinic/day_1-<12 hex>: readable (ASCII, at most 200 characters before
    the tag), and unique per key and object version (the tag hashes both, so two long keys that shorten alike
    still get two names)."""
    stem = re.sub(r"\.(csv|parquet|pq|txt)$", "", key.removeprefix(INBOX), flags=re.IGNORECASE)
    stem = re.sub(r"[^A-Za-z0-9._/=-]+", "_", stem)[:MAX_STEM].strip("/.") or "file"
    stem = re.sub(r"/+", "/", stem)
    tag = hashlib.sha256(f"{key}\0{version_id or etag.strip(chr(34))}".encode()).hexdigest()[:12]
    return f"{stem}-{tag}"


def file_name(key: str) -> str:
    """The input's file name, shortened (keeping its extension) so a quarantine key stays a valid S3 key."""
    name = key.rsplit("/", 1)[-1] or "file"
    if len(name.encode()) <= MAX_STEM:
        return name
    base, dot, ext = name.rpartition(".")
    ext = ext[:16] if dot else ""
    head = (base if dot else name).encode()[: MAX_STEM - len(ext) - 1].decode("utf-8", "ignore")
    return f"{head}.{ext}" if ext else head
