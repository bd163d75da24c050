"""The services' command lines refuse bad configuration before touching the network."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.support import ROOT
from tests.support.settings import clean_env

SERVICES = ["producer_service", "consumer_service", "zones_service"]


def _run(module: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", module],
        cwd=ROOT,
        env=clean_env(**env),
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize("module", SERVICES)
def test_a_bad_setting_stops_the_service_naming_the_key_but_not_the_secret(module: str) -> None:
    result = _run(
        module,
        KAFKA__BOOTSTRAP_SERVERS="127.0.0.1:9",
        KAFKA__SECURITY_PROTOCOL="SASL_SSL",
        KAFKA__SASL_MECHANISM="GSSAPI",
        KAFKA__SASL_PASSWORD="do-not-print-me",
    )
    assert result.returncode == 2
    assert "BIOMETRICS_KAFKA__SASL_MECHANISM" in result.stderr
    assert "do-not-print-me" not in result.stderr + result.stdout


@pytest.mark.parametrize("module", SERVICES)
def test_no_bootstrap_servers_is_a_clear_start_up_error(module: str) -> None:
    result = _run(module)
    assert result.returncode == 2
    assert "BIOMETRICS_KAFKA__BOOTSTRAP_SERVERS" in result.stderr


@pytest.mark.parametrize("module", SERVICES)
def test_a_local_registry_url_is_for_the_run_command_only(module: str) -> None:
    result = _run(
        module,
        KAFKA__BOOTSTRAP_SERVERS="127.0.0.1:9",
        SCHEMA_REGISTRY__URL="local",
    )
    assert result.returncode == 2
    assert "BIOMETRICS_SCHEMA_REGISTRY__URL" in result.stderr
