"""The Confluent Cloud profile: SASL_SSL with PLAIN, and certifi's CA bundle where none is."""

from __future__ import annotations

import subprocess
import sys

from shared.kafka.options import client_options
from shared.runtime.settings import load_settings
from tests.support import ROOT


def test_the_certifi_bundle_named_by_python_m_certifi_loads_as_ssl_cafile() -> None:
    cafile = subprocess.run(
        [sys.executable, "-m", "certifi"], capture_output=True, text=True, check=True
    ).stdout.strip()
    env = {
        "BIOMETRICS_KAFKA__BOOTSTRAP_SERVERS": "pkc-123.region.cloud:9092",
        "BIOMETRICS_KAFKA__SECURITY_PROTOCOL": "SASL_SSL",
        "BIOMETRICS_KAFKA__SASL_MECHANISM": "PLAIN",
        "BIOMETRICS_KAFKA__SASL_USERNAME": "api-key",
        "BIOMETRICS_KAFKA__SASL_PASSWORD": "api-secret",
        "BIOMETRICS_KAFKA__SSL_CAFILE": cafile,
    }
    settings = load_settings(ROOT, env)
    assert settings.kafka.ssl_cafile == cafile
    context = client_options(settings.kafka)["ssl_context"]
    assert context.cert_store_stats()["x509_ca"] > 0
