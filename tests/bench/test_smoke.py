"""The benchmark command runs end to end with tiny durations and writes every row it promises.

Counts only: timings from a run this short (and on a shared machine) prove nothing.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bench.options import ROWS
from bench.report import Report, judge
from tests.support import ROOT
from tests.support.settings import clean_env

_TOOLS = ("wrk", "kcat")
# The rows measured once per round; the others (RSS, end to end) once per run.
_ROUND_ROWS = set(ROWS) - {"memory", "end_to_end", "end_to_end_zones"}
_TARGET_NAMES = [target.name for target in judge(Report(meta={}))]

pytestmark = [
    pytest.mark.kafka,
    pytest.mark.skipif(
        not all(shutil.which(tool) for tool in _TOOLS),
        reason="the benchmark needs wrk and kcat (apt-get install wrk kcat)",
    ),
]


def _has_py_spy() -> bool:
    return Path(sys.executable).with_name("py-spy").exists() or shutil.which("py-spy") is not None


def test_the_benchmark_measures_every_row_and_writes_json_table_and_chart(tmp_path: Path) -> None:
    env = clean_env()
    command = [
        *(sys.executable, "-m", "bench", "--seconds=1", "--rounds=2", "--warmup=0"),
        *("--memory-seconds=2", "--consumer-events=2000", f"--output={tmp_path}"),
    ]
    if servers := os.environ.get("BIOMETRICS_KAFKA__BOOTSTRAP_SERVERS"):
        command.append(f"--bootstrap-servers={servers}")
    if _has_py_spy():
        command.append("--profile")
    result = subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    assert result.returncode == 0, result.stderr[-4000:]

    [run] = tmp_path.iterdir()
    report = json.loads((run / "results.json").read_text())
    assert set(report) == {"meta", "rows", "targets", "skipped", "profiles"}
    assert report["skipped"] == {}
    assert [row["name"] for row in report["rows"]] == list(ROWS)
    for row in report["rows"]:
        assert row["events"] > 0, row
        assert row["seconds"] > 0, row
        assert row["events_per_s"] > 0, row
        assert row["cpu"], row
    rounds = [len(row["details"]["rounds_events_per_s"]) for row in report["rows"]]
    assert rounds == [2 if name in _ROUND_ROWS else 1 for name in ROWS]
    timed = [row for row in report["rows"] if row["name"] not in ("ceiling", "c_ceiling")]
    # Rows that drain a topic (the consumers, the zone processor) or decode in the bench's own
    # process have no per-request latency.
    draining = ("consumer", "zones", "decode")
    assert all(row["p50_ms"] is not None for row in timed if not row["name"].startswith(draining))
    assert all(target["measured"] is not None for target in report["targets"])
    assert [target["name"] for target in report["targets"]] == _TARGET_NAMES
    assert all(target["met"] in (True, False) for target in report["targets"])
    if _has_py_spy():
        assert set(report["profiles"]) == {"producer", "consumer", "zone processor"}
        assert all(profile["samples"] > 0 for profile in report["profiles"].values())

    table = (run / "table.txt").read_text()
    assert all(row["label"] in table for row in report["rows"])
    assert result.stdout.strip() == table.strip()
    if importlib.util.find_spec("matplotlib") is not None:
        assert (run / "chart.png").read_bytes().startswith(b"\x89PNG")
