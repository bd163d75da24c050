"""The benchmark command runs end to end with the tiniest loads: every row it promises measured,
every target judged, the profiles written, the JSON, table and chart; the rows of a round once a
round, the others once a run.

Counts only: timings from a run this short (and on a shared machine) prove nothing. The command
runs against the session's broker and Schema Registry, with the services' poll timeouts short so
that each stops soon after SIGTERM.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bench.options import ROWS
from bench.report import Report, judge
from tests.support import ROOT
from tests.support.settings import clean_env

_TOOLS = ("wrk", "kcat")
_TARGET_NAMES = [target.name for target in judge(Report(meta={}))]
# A row of each kind a round measures (the ceilings, the HTTP rows, the drains, the decodes),
# and one measured once a run.
_ROUND_ROWS = ("c_ceiling", "single_c1", "consumer_ceiling", "decode_strict")
_RUN_ROWS = ("memory",)

pytestmark = [
    pytest.mark.kafka,
    pytest.mark.skipif(
        not all(shutil.which(tool) for tool in _TOOLS),
        reason="the benchmark needs wrk and kcat (apt-get install wrk kcat)",
    ),
]


def _has_py_spy() -> bool:
    return Path(sys.executable).with_name("py-spy").exists() or shutil.which("py-spy") is not None


def _run_bench(
    output: Path, bootstrap: str, *options: str
) -> tuple[subprocess.CompletedProcess[str], Path, dict[str, Any]]:
    """Run `python -m bench` with loads of 0.2 s; its output, run directory and results.json."""
    command = [
        *(sys.executable, "-m", "bench", "--seconds=0.2", "--warmup=0", "--memory-seconds=0.2"),
        *(f"--output={output}", f"--bootstrap-servers={bootstrap}", *options),
    ]
    env = clean_env(consumer__poll_timeout_ms="100", zones__poll_timeout_ms="100")
    result = subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, result.stderr[-4000:]
    [run] = output.iterdir()
    return result, run, json.loads((run / "results.json").read_text())


def test_the_benchmark_measures_every_row_judges_every_target_and_writes_its_files(
    tmp_path: Path, kafka_bootstrap: str, schema_registry_url: str
) -> None:
    registry = f"--schema-registry-url={schema_registry_url}"
    options = ["--rounds=1", "--consumer-events=500", registry]
    if _has_py_spy():
        options.append("--profile")

    result, run, report = _run_bench(tmp_path, kafka_bootstrap, *options)

    assert set(report) == {"meta", "rows", "targets", "skipped", "profiles"}
    assert report["skipped"] == {}
    assert [row["name"] for row in report["rows"]] == list(ROWS)
    for row in report["rows"]:
        assert row["events"] > 0, row
        assert row["seconds"] > 0, row
        assert row["events_per_s"] > 0, row
        assert row["cpu"], row
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


def test_the_rows_of_a_round_are_measured_each_round_and_the_others_once(
    tmp_path: Path, kafka_bootstrap: str
) -> None:
    rows = ",".join((*_ROUND_ROWS, *_RUN_ROWS))

    _, _, report = _run_bench(
        tmp_path, kafka_bootstrap, "--rounds=2", "--consumer-events=200", f"--rows={rows}"
    )

    rounds = {row["name"]: len(row["details"]["rounds_events_per_s"]) for row in report["rows"]}
    assert rounds == {**dict.fromkeys(_ROUND_ROWS, 2), **dict.fromkeys(_RUN_ROWS, 1)}
