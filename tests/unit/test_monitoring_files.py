"""The Prometheus rules and the Grafana dashboard: valid to promtool, each alert tested both ways
and documented in the runbook, every series they read one the services export or a rule
records, and the dashboard importable with its data source as an input."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry
from starlette.testclient import TestClient

from consumer_service.metrics import ConsumerMetrics
from producer_service import create_app
from shared.runtime.probes import create_probe_app
from tests.support.fakes import RecordingPublisher
from tests.support.monitoring import (
    RULE_FILES,
    RULE_TESTS,
    RUNBOOK,
    alerts,
    dashboard,
    dashboard_panels,
    dashboard_queries,
    exported_names,
    prometheus_tool,
    recorded_names,
    rules,
    series_names,
)
from tests.support.settings import project_settings
from tests.unit.test_readme import _anchors
from zones_service.metrics import ZoneMetrics


def _promtool(*arguments: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [prometheus_tool("promtool"), *map(str, arguments)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_promtool_checks_the_rule_files() -> None:
    checked = _promtool("check", "rules", *RULE_FILES)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_promtool_unit_tests_of_the_rules_pass() -> None:
    tested = _promtool("test", "rules", RULE_TESTS)
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_every_alert_is_tested_firing_and_quiet() -> None:
    cases = [
        case
        for test in yaml.safe_load(RULE_TESTS.read_text())["tests"]
        for case in test.get("alert_rule_test", [])
    ]
    fired = {case["alertname"] for case in cases if case.get("exp_alerts")}
    quiet = {case["alertname"] for case in cases if not case.get("exp_alerts")}
    names = {rule["alert"] for rule in alerts()}
    assert (names - fired, names - quiet) == (set(), set())


@pytest.mark.parametrize("rule", alerts(), ids=lambda rule: rule["alert"])
def test_every_alert_has_a_summary_a_description_and_its_runbook_section(
    rule: dict[str, Any],
) -> None:
    annotations = rule["annotations"]
    assert annotations["summary"] and annotations["description"]
    assert rule["labels"]["severity"] in {"page", "ticket"}
    path, _, anchor = annotations["runbook_url"].partition("#")
    assert path == "docs/runbook.md"
    assert anchor == rule["alert"].lower()
    assert anchor in _anchors(RUNBOOK.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def exported() -> set[str]:
    """Every series name the three services declare on /metrics, and Prometheus' own `up`."""
    settings = project_settings()
    with TestClient(create_app(settings, lambda _: RecordingPublisher(settings))) as client:
        producer = client.get("/metrics").text
    consumer = _metrics_text(ConsumerMetrics().registry)
    zones = _metrics_text(ZoneMetrics(lambda: {}).registry)
    return exported_names(producer) | exported_names(consumer) | exported_names(zones) | {"up"}


def _metrics_text(registry: CollectorRegistry) -> str:
    with TestClient(create_probe_app(registry, lambda: True)) as client:
        return client.get("/metrics").text


def test_every_series_a_rule_reads_is_exported_or_recorded(exported: set[str]) -> None:
    read = {name for rule in rules() for name in series_names(rule["expr"])}
    assert read - exported - set(recorded_names()) == set()


def test_every_series_a_dashboard_query_reads_is_exported_or_recorded(exported: set[str]) -> None:
    read = {name for query in dashboard_queries() for name in series_names(query)}
    assert read - exported - set(recorded_names()) == set()


def test_every_recorded_rate_is_read_by_the_dashboard_an_alert_or_another_rule() -> None:
    read = {name for query in dashboard_queries() for name in series_names(query)}
    read |= {name for rule in rules() for name in series_names(rule["expr"])}
    assert set(recorded_names()) - read == set()


def test_promtool_parses_every_dashboard_query(tmp_path: Path) -> None:
    as_rules = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [
                    {"record": f"dashboard:query_{index}:check", "expr": query}
                    for index, query in enumerate(dashboard_queries())
                ],
            }
        ]
    }
    path = tmp_path / "dashboard.yaml"
    path.write_text(yaml.safe_dump(as_rules))
    checked = _promtool("check", "rules", path)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_dashboard_imports_with_prometheus_as_its_data_source_input() -> None:
    document = dashboard()
    assert 39 <= document["schemaVersion"] <= 41
    assert document["id"] is None and document["uid"]
    [source] = document["__inputs"]
    assert (source["name"], source["type"], source["pluginId"]) == (
        "DS_PROMETHEUS",
        "datasource",
        "prometheus",
    )
    ids = [panel["id"] for panel in dashboard_panels()]
    assert len(ids) == len(set(ids))
    expected = {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}
    for panel in dashboard_panels():
        assert panel["datasource"] == expected, panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == expected, panel["title"]
