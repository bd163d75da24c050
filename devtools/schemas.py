"""The committed versions of each event's schema: one file per version under schemas/, written by
this command from the code, never by hand.

    python -m devtools.schemas           write the code's schema of each event as its next version
                                         when it differs from the latest committed one
    python -m devtools.schemas --check   write nothing; exit 1 naming each event whose code
                                         differs from its latest committed version

`schemas/<event>/<n>.json` is version n of the JSON Schema that the services register under the
event's subject (Biometrics under `<kafka.topic>-value`, HeartRateZoneReached under
`<zones.topic>-value`). tests/unit/test_schema_versions.py fails while the code and the latest
version differ; tests/integration/test_schema_evolution.py runs `check_history` on every version
in order, then the code's, against a real registry: the writers' schemas at
schema_registry.compatibility, their readers' views at FORWARD_TRANSITIVE (docs/events.md).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from shared.contracts.schema import json_schema
from shared.contracts.zones import zone_json_schema
from shared.kafka.registry import SchemaRegistry, value_subject
from shared.runtime.settings import Settings

SCHEMAS_DIR = Path(__file__).resolve().parent.parent / "schemas"


@dataclass(frozen=True)
class Event:
    """An event the services write, its schema as the code makes it, and the topic setting whose
    subject it is registered under."""

    name: str
    schema: Callable[[], dict[str, Any]]
    topic: Callable[[Settings], str]

    def subject(self, settings: Settings) -> str:
        """The subject its schema is registered under (the TopicNameStrategy)."""
        return value_subject(self.topic(settings))

    def versions(self, root: Path = SCHEMAS_DIR) -> list[dict[str, Any]]:
        """Its committed versions, the first first."""
        files = sorted((root / self.name).glob("*.json"), key=lambda path: int(path.stem))
        numbers = [int(path.stem) for path in files]
        if numbers != list(range(1, len(files) + 1)):
            raise ValueError(f"{root / self.name}: versions {numbers} are not 1 to {len(files)}")
        return [orjson.loads(path.read_bytes()) for path in files]


EVENTS = (
    Event("Biometrics", json_schema, lambda settings: settings.kafka.topic),
    Event("HeartRateZoneReached", zone_json_schema, lambda settings: settings.zones.topic),
)


# The level the readers' views are checked at: every earlier reader reads what a version writes.
READERS_LEVEL = "FORWARD_TRANSITIVE"


def reader_view(schema: Any) -> Any:
    """`schema` as a tolerant reader applies it (shared.contracts.schema.parse_record): every
    object's content model open, nothing else changed."""
    if isinstance(schema, dict):
        return {
            key: reader_view(value)
            for key, value in schema.items()
            if not (key == "additionalProperties" and value is False)
        }
    if isinstance(schema, list):
        return [reader_view(item) for item in schema]
    return schema


async def check_history(
    registry: SchemaRegistry, subject: str, versions: list[dict[str, Any]], level: str
) -> None:
    """Register `versions` in order under `subject`, the writers' schemas at `level` (what the
    services set), then their readers' views under `<subject>.readers` at READERS_LEVEL:
    RegistryRefusedError, in one line naming the subject, the level and the registry's reason,
    at the first version refused."""
    for schema in versions:
        await registry.register(subject, schema, level)
    readers = f"{subject}.readers"
    for schema in versions:
        await registry.register(readers, reader_view(schema), READERS_LEVEL)


def encode(schema: dict[str, Any]) -> bytes:
    """A version file's bytes: indented, keys sorted, so that a change reads well in a diff."""
    return orjson.dumps(schema, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"


def changed(root: Path = SCHEMAS_DIR) -> list[Event]:
    """The events whose code's schema is not their latest committed version."""
    return [event for event in EVENTS if event.versions(root)[-1:] != [event.schema()]]


def write_new_versions(root: Path = SCHEMAS_DIR) -> list[Path]:
    """Write the code's schema of each changed event as its next version; return the files."""
    written = []
    for event in changed(root):
        path = root / event.name / f"{len(event.versions(root)) + 1}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(encode(event.schema()))
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m devtools.schemas",
        description="Write each event's schema as its next version when the code changed it.",
    )
    parser.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 if a version is missing"
    )
    args = parser.parse_args(argv)
    if args.check:
        missing = changed()
        for event in missing:
            print(
                f"{event.name}: the code's schema is not its latest version in "
                f"{SCHEMAS_DIR / event.name}; run python -m devtools.schemas",
                file=sys.stderr,
            )
        return 1 if missing else 0
    written = write_new_versions()
    for path in written:
        print(f"wrote {path.relative_to(SCHEMAS_DIR.parent)}")
    if not written:
        print("every event's latest version is the code's schema: nothing written")
    return 0


if __name__ == "__main__":
    sys.exit(main())
