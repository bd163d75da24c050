"""The one JSON line a helper process prints for the driver, among its other output."""

from __future__ import annotations

import json
from typing import Any

_MARKER = "BENCH_RESULT "


def emit(result: dict[str, Any]) -> None:
    """Print the result as the marked line the driver looks for."""
    print(_MARKER + json.dumps(result), flush=True)


def receive(output: str) -> dict[str, Any]:
    """The last marked result in a helper's output; ValueError if there is none."""
    for line in reversed(output.splitlines()):
        if line.startswith(_MARKER):
            result: dict[str, Any] = json.loads(line.removeprefix(_MARKER))
            return result
    raise ValueError(f"no result line in the helper's output:\n{output[-2000:]}")
