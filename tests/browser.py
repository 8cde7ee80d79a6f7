"""Which browser the console's browser tests drive, and what a machine without one does: skip, naming the
package, or under CI=true fail (a green CI must have run them)."""

from __future__ import annotations

import os
import shutil

CHROMIUM_PACKAGE = "chromium (Debian/Ubuntu: `sudo apt-get install chromium`)"


def chromium_path() -> str | None:
    for candidate in (os.environ.get("DR_CHROMIUM"), "chromium", "chromium-browser", "google-chrome"):
        if candidate and (found := shutil.which(candidate)):
            return found
    return None


def without_browser(ci: str | None) -> tuple[str, str]:
    """("skip" | "fail", message) for a machine with no Chromium."""
    message = f"no Chromium on this machine: the browser tests need the OS package {CHROMIUM_PACKAGE}"
    if (ci or "").lower() == "true":
        return "fail", message + " (CI=true: .ci/run installs it when it runs as root)"
    return "skip", message
