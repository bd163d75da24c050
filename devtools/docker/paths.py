"""Where the local Docker tooling keeps what outlives a run: the engine's data, its log."""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    """$BIOMETRICS_CACHE_DIR, else ~/.cache/biometrics: the same root the Kafka jars use."""
    return Path(os.environ.get("BIOMETRICS_CACHE_DIR") or Path.home() / ".cache" / "biometrics")
