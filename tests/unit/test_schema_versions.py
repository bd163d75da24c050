"""Every change to an event is a new committed version: the code's schema of each event is its
latest file under schemas/, and the files are the command's output (python -m devtools.schemas),
not edited by hand."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import orjson
import pytest

from devtools import schemas
from devtools.schemas import EVENTS, SCHEMAS_DIR, changed, encode, write_new_versions


@pytest.mark.parametrize("event", EVENTS, ids=lambda event: event.name)
def test_the_codes_schema_is_the_latest_committed_version(event: schemas.Event) -> None:
    versions = event.versions()
    assert versions, f"{SCHEMAS_DIR / event.name} holds no version"
    assert versions[-1] == event.schema(), (
        f"{event.name}: the code's schema differs from version {len(versions)} in "
        f"{SCHEMAS_DIR / event.name}; if the change is meant, run python -m devtools.schemas and "
        "commit the new version (docs/events.md, Changing an event)"
    )


def test_the_version_files_are_written_by_the_command() -> None:
    for event in EVENTS:
        for path in sorted((SCHEMAS_DIR / event.name).glob("*.json")):
            assert path.read_bytes() == encode(orjson.loads(path.read_bytes())), path


def test_the_biometrics_versions_differ_by_the_optional_resting_heart_rate() -> None:
    first, second = next(event for event in EVENTS if event.name == "Biometrics").versions()[:2]
    assert set(second["properties"]) - set(first["properties"]) == {"restingHeartRate"}
    assert second["required"] == first["required"]


def test_a_changed_schema_becomes_the_next_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "schemas"
    shutil.copytree(SCHEMAS_DIR, root)
    assert changed(root) == [] and write_new_versions(root) == []
    widened = EVENTS[0].schema()
    widened["properties"]["maxHeartRate"]["maximum"] += 10
    biometrics = dataclasses.replace(EVENTS[0], schema=lambda: widened)
    monkeypatch.setattr(schemas, "EVENTS", (biometrics, *EVENTS[1:]))
    assert changed(root) == [biometrics]
    count = len(biometrics.versions(root))
    [written] = write_new_versions(root)
    assert written == root / "Biometrics" / f"{count + 1}.json"
    assert biometrics.versions(root)[-1] == widened and changed(root) == []


def test_a_gap_in_the_versions_is_an_error(tmp_path: Path) -> None:
    root = tmp_path / "schemas"
    shutil.copytree(SCHEMAS_DIR, root)
    (root / "Biometrics" / "1.json").unlink()
    with pytest.raises(ValueError, match="are not 1 to"):
        EVENTS[0].versions(root)
