"""Reading py-spy's collapsed stacks into the frames where the time goes."""

from __future__ import annotations

from pathlib import Path

from bench.profiler import top_frames

_STACKS = """\
main (/app/producer_service/__main__.py:30);post (/app/producer_service/endpoints.py:20);\
model_validate_json (/v/lib/python3.11/site-packages/pydantic/main.py:847) 6
main (/app/producer_service/__main__.py:30);run (/usr/lib/python3.11/asyncio/runners.py:118) 4
"""


def test_self_time_package_share_and_project_total_are_percentages_of_all_samples(
    tmp_path: Path,
) -> None:
    raw = tmp_path / "profile.txt"
    raw.write_text(_STACKS)

    profile = top_frames(raw)

    assert profile["samples"] == 10
    assert profile["self"] == [
        ["model_validate_json (pydantic/main.py)", 60.0],
        ["run (stdlib/asyncio/runners.py)", 40.0],
    ]
    assert profile["packages"] == [["pydantic", 60.0], ["stdlib/asyncio", 40.0]]
    assert ["post (/app/producer_service/endpoints.py)", 60.0] in profile["project_total"]
