"""`sample_value`: one sample of a service's /metrics text, as a test reads it."""

from __future__ import annotations

import re


def sample_value(metrics: str, sample: str) -> float:
    """The value of `sample` (its name and labels, as printed) in Prometheus text; 0 if absent."""
    found = re.search(rf"^{re.escape(sample)} (\S+)$", metrics, re.M)
    return float(found.group(1)) if found else 0.0
