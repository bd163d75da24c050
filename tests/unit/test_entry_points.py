"""The services' command lines refuse bad configuration before touching the network."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.support import ROOT
from tests.support.settings import clean_env

SERVICES = ["producer_service", "consumer_service", "zones_service"]


def _refused(module: str, naming: str, **settings: str) -> subprocess.CompletedProcess[str]:
    """Run the service with `settings`; it must exit 2 naming the variable `naming`."""
    result = subprocess.run(
        [sys.executable, "-m", module],
        cwd=ROOT,
        env=clean_env(**settings),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert naming in result.stderr
    return result


@pytest.mark.parametrize("module", SERVICES)
def test_a_bad_setting_stops_the_service_naming_the_key_but_not_the_secret(module: str) -> None:
    result = _refused(
        module,
        "BIOMETRICS_KAFKA__SASL_MECHANISM",
        KAFKA__BOOTSTRAP_SERVERS="127.0.0.1:9",
        KAFKA__SECURITY_PROTOCOL="SASL_SSL",
        KAFKA__SASL_MECHANISM="GSSAPI",
        KAFKA__SASL_PASSWORD="do-not-print-me",
    )
    assert "do-not-print-me" not in result.stderr + result.stdout


@pytest.mark.parametrize("module", SERVICES)
def test_no_bootstrap_servers_is_a_clear_start_up_error(module: str) -> None:
    _refused(module, "BIOMETRICS_KAFKA__BOOTSTRAP_SERVERS")


@pytest.mark.parametrize("module", SERVICES)
def test_a_local_registry_url_is_for_the_run_command_only(module: str) -> None:
    _refused(
        module,
        "BIOMETRICS_SCHEMA_REGISTRY__URL",
        KAFKA__BOOTSTRAP_SERVERS="127.0.0.1:9",
        SCHEMA_REGISTRY__URL="local",
    )
