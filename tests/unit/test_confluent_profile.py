"""The Confluent Cloud profile: SASL_SSL with PLAIN, and certifi's CA bundle where none is."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from shared.kafka import client_options
from shared.settings import load_settings
from tests.support import ROOT


def test_the_certifi_bundle_named_by_python_m_certifi_loads_as_ssl_cafile(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in [name for name in os.environ if name.startswith("BIOMETRICS_")]:
        monkeypatch.delenv(name)
    cafile = subprocess.run(
        [sys.executable, "-m", "certifi"], capture_output=True, text=True, check=True
    ).stdout.strip()
    monkeypatch.setenv("BIOMETRICS_KAFKA__BOOTSTRAP_SERVERS", "pkc-123.region.cloud:9092")
    monkeypatch.setenv("BIOMETRICS_KAFKA__SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("BIOMETRICS_KAFKA__SASL_MECHANISM", "PLAIN")
    monkeypatch.setenv("BIOMETRICS_KAFKA__SASL_USERNAME", "api-key")
    monkeypatch.setenv("BIOMETRICS_KAFKA__SASL_PASSWORD", "api-secret")
    monkeypatch.setenv("BIOMETRICS_KAFKA__SSL_CAFILE", cafile)
    settings = load_settings(ROOT)
    assert settings.kafka.ssl_cafile == cafile
    context = client_options(settings.kafka)["ssl_context"]
    assert context.cert_store_stats()["x509_ca"] > 0
