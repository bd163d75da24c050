"""The monitoring files (deploy/prometheus, deploy/grafana) as the tests read them, Debian's
Prometheus and promtool, and the names of the metrics the services export."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from tests.support import ROOT
from tests.support.skips import require

RULES = ROOT / "deploy" / "prometheus"
RULE_FILES = (RULES / "recording.yaml", RULES / "alerts.yaml")
RULE_TESTS = RULES / "tests.yaml"
DASHBOARD = ROOT / "deploy" / "grafana" / "biometrics.json"
RUNBOOK = ROOT / "docs" / "runbook.md"

# CI services set CI; .ci/run sets TEST_REQUIRE_PROMETHEUS.
_REQUIRE_ENVS = ("CI", "TEST_REQUIRE_PROMETHEUS")
_INSTALL = "apt-get install -y prometheus"
# A series name in PromQL: a recorded rate (level:metric:operations) or an exported metric.
_SERIES = re.compile(r"\b(?:[a-z_]+:)?(?:biometrics|process)_[a-z0-9_:]*|\bup\b")


def prometheus_tool(name: str) -> Path:
    """Debian's /usr/bin/prometheus or /usr/bin/promtool; in CI its absence fails the test,
    elsewhere it skips it with the command that installs it."""
    found = shutil.which(name)
    require(found is not None, f"{name} is missing: {_INSTALL}", required_by=_REQUIRE_ENVS)
    assert found is not None
    return Path(found)


def rule_groups() -> list[dict[str, Any]]:
    """The groups of every rule file, recording first."""
    return [group for path in RULE_FILES for group in yaml.safe_load(path.read_text())["groups"]]


def rules() -> Iterator[dict[str, Any]]:
    """Every rule of every group."""
    for group in rule_groups():
        yield from group["rules"]


def alerts() -> list[dict[str, Any]]:
    """The alerting rules."""
    return [rule for rule in rules() if "alert" in rule]


def recorded_names() -> list[str]:
    """The names of the recording rules."""
    return [rule["record"] for rule in rules() if "record" in rule]


def shortened_rules(directory: Path, hold: str) -> list[Path]:
    """Copies of the rule files in `directory`, every alert's `for` replaced by `hold`."""
    copies = []
    for path in RULE_FILES:
        document = yaml.safe_load(path.read_text())
        for group in document["groups"]:
            for rule in group["rules"]:
                if "for" in rule:
                    rule["for"] = hold
        copy = directory / path.name
        copy.write_text(yaml.safe_dump(document, sort_keys=False))
        copies.append(copy)
    return copies


def dashboard() -> dict[str, Any]:
    """The Grafana dashboard, as Grafana imports it."""
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def dashboard_panels() -> list[dict[str, Any]]:
    """The dashboard's panels, those in rows included."""
    panels = []
    for panel in dashboard()["panels"]:
        panels.append(panel)
        panels.extend(panel.get("panels", []))
    return panels


def dashboard_queries() -> list[str]:
    """The PromQL of every target of every panel."""
    return [target["expr"] for panel in dashboard_panels() for target in panel.get("targets", [])]


def series_names(promql: str) -> set[str]:
    """The series a PromQL expression selects (recorded rates and exported metrics)."""
    return set(_SERIES.findall(promql))


def exported_names(metrics_text: str) -> set[str]:
    """The series names a /metrics answer declares (its # TYPE lines, so also those with no
    sample yet), a histogram's as _bucket, _sum and _count."""
    names = set()
    for name, kind in re.findall(r"^# TYPE (\S+) (\S+)$", metrics_text, flags=re.MULTILINE):
        suffixes = ("_bucket", "_sum", "_count") if kind == "histogram" else ("",)
        names.update(name + suffix for suffix in suffixes)
    return names
