"""EventLog: the consumer service's log file, followed as it grows."""

from __future__ import annotations

import subprocess
import time
from datetime import datetime
from pathlib import Path

import orjson

from consumer_service import EVENT_CONSUMED

# The line as the consumer's JSON log writes it.
_EVENT_LINE = b'"message":' + orjson.dumps(EVENT_CONSUMED)


class EventLog:
    """Counts the consumer's EVENT_CONSUMED lines and reads each one's key and time."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._offset = 0
        self._lines: list[bytes] = []

    def _read_new(self) -> None:
        with self.path.open("rb") as log:
            log.seek(self._offset)
            data = log.read()
        complete = data.rpartition(b"\n")[0]
        if complete:
            self._offset += len(complete) + 1
            self._lines.extend(line for line in complete.split(b"\n") if _EVENT_LINE in line)

    def count(self) -> int:
        """How many events have been logged so far."""
        self._read_new()
        return len(self._lines)

    def wait_for(self, count: int, timeout_s: float, writer: subprocess.Popen[bytes]) -> int:
        """Poll until `count` events are logged, the writer exits or the deadline passes;
        return the count."""
        deadline = time.monotonic() + timeout_s
        while (seen := self.count()) < count and time.monotonic() < deadline:
            if writer.poll() is not None:
                raise RuntimeError(f"the consumer exited with {writer.returncode}; see {self.path}")
            time.sleep(0.1)
        return seen

    def times(self) -> dict[str, float]:
        """Each logged event's key and the wall-clock time of its line (the last, if repeated)."""
        self._read_new()
        found: dict[str, float] = {}
        for line in self._lines:
            entry = orjson.loads(line)
            found[entry["key"]] = datetime.fromisoformat(entry["time"]).timestamp()
        return found

    def span(self) -> tuple[int, float]:
        """The number of events logged and the seconds from the first line to the last."""
        self._read_new()
        if len(self._lines) < 2:
            return len(self._lines), 0.0
        first, last = (orjson.loads(self._lines[i])["time"] for i in (0, -1))
        elapsed = datetime.fromisoformat(last) - datetime.fromisoformat(first)
        return len(self._lines), elapsed.total_seconds()
