"""The measured rows, the targets judged from them, and the report that holds both."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson


@dataclass
class Row:
    """One line of the table: what was measured, how fast, and what each process cost."""

    name: str
    label: str
    events: int
    seconds: float
    p50_ms: float | None = None
    p99_ms: float | None = None
    errors: int | None = None
    # CPU per process over the measured window, in % of one core.
    cpu: dict[str, float] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def events_per_s(self) -> float:
        """Events handled per second over the measured window."""
        return self.events / self.seconds if self.seconds > 0 else 0.0


@dataclass(frozen=True)
class Target:
    """A goal of the issue, measured as a ratio (or a value) within this run."""

    name: str
    measured: float | None
    goal: float
    # "ratio": at least goal; "ms": below goal; "added_ms": at most goal ms over the reference
    # row's; "growth": at most goal
    unit: str
    met: bool | None  # None: a row it needs was not run
    basis: str


@dataclass
class Report:
    """Everything one run produced."""

    meta: dict[str, Any]
    rows: list[Row] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    profiles: dict[str, dict[str, Any]] = field(default_factory=dict)

    def row(self, name: str) -> Row | None:
        """The row of that name, if it was measured."""
        return next((row for row in self.rows if row.name == name), None)

    def keep_best_rounds(self) -> None:
        """Keep one row per name, the round with the most events/s (a shared machine only ever
        slows a row down); its details list every round's events/s."""
        rounds: dict[str, list[Row]] = {}
        for row in self.rows:
            rounds.setdefault(row.name, []).append(row)
        self.rows = []
        for measured in rounds.values():
            best = max(measured, key=lambda row: row.events_per_s)
            best.details["rounds_events_per_s"] = [round(row.events_per_s, 1) for row in measured]
            self.rows.append(best)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict; every row gains its events_per_s."""
        rows = [{**asdict(row), "events_per_s": row.events_per_s} for row in self.rows]
        return {
            "meta": self.meta,
            "rows": rows,
            "targets": [asdict(target) for target in self.targets],
            "skipped": self.skipped,
            "profiles": self.profiles,
        }

    def write_json(self, path: Path) -> Path:
        """Write the report as indented JSON (orjson writes NaN as null); return the path."""
        path.write_bytes(orjson.dumps(self.to_json(), option=orjson.OPT_INDENT_2))
        return path
