from __future__ import annotations

from pathlib import Path

import pytest

from shared.kafka.options import KafkaNotConfiguredError, client_options
from shared.runtime.settings import SettingsError, load_settings
from tests.support import ROOT


def test_defaults_are_safe_for_kafka() -> None:
    settings = load_settings(ROOT, env={})
    assert settings.producer.acks == "all"
    assert settings.producer.enable_idempotence is True
    assert settings.kafka.topic == "BiometricsImported"
    assert settings.http.max_body_bytes == 1024 * 1024
    assert (settings.http.host, settings.http.port) == ("127.0.0.1", 8000)


def test_environment_variables_override_nested_keys_with_typed_values() -> None:
    env = {
        "BIOMETRICS_KAFKA__BOOTSTRAP_SERVERS": "broker-1:9092,broker-2:9092",
        "BIOMETRICS_KAFKA__TOPIC_PARTITIONS": "12",
    }
    settings = load_settings(ROOT, env)
    assert settings.kafka.bootstrap_servers == "broker-1:9092,broker-2:9092"
    assert settings.kafka.topic_partitions == 12


def test_a_bad_value_is_reported_by_key_and_variable() -> None:
    env = {"BIOMETRICS_HTTP__PORT": "70000"}
    with pytest.raises(SettingsError, match=r"http\.port \(BIOMETRICS_HTTP__PORT\)"):
        load_settings(ROOT, env)


def test_a_misspelt_key_is_an_error_not_ignored() -> None:
    env = {"BIOMETRICS_KAFKA__BOOTSTRAP_SERVER": "broker:9092"}
    with pytest.raises(SettingsError, match=r"kafka\.bootstrap_server "):
        load_settings(ROOT, env)


def test_weakening_acks_while_idempotent_is_refused() -> None:
    env = {"BIOMETRICS_PRODUCER__ACKS": '"1"'}
    with pytest.raises(SettingsError, match="enable_idempotence needs acks"):
        load_settings(ROOT, env)


def test_acks_1_may_be_given_as_a_number_and_acks_0_is_refused_with_the_reason() -> None:
    env = {"BIOMETRICS_PRODUCER__ACKS": "1", "BIOMETRICS_PRODUCER__ENABLE_IDEMPOTENCE": "false"}
    assert load_settings(ROOT, env).producer.acks == "1"
    for zero in ("0", '"0"'):
        env["BIOMETRICS_PRODUCER__ACKS"] = zero
        with pytest.raises(SettingsError, match=r'producer\.acks .*acks = "0" is refused'):
            load_settings(ROOT, env)


def test_secrets_never_appear_in_errors_or_reprs() -> None:
    env = {
        "BIOMETRICS_KAFKA__SECURITY_PROTOCOL": "SASL_SSL",
        "BIOMETRICS_KAFKA__SASL_USERNAME": "api-key-visible-name",
        "BIOMETRICS_KAFKA__SASL_PASSWORD": "s3cr3t-value",
        "BIOMETRICS_KAFKA__SASL_MECHANISM": "PLAIN",
    }
    settings = load_settings(ROOT, env)
    assert "s3cr3t-value" not in repr(settings)
    env["BIOMETRICS_KAFKA__SASL_MECHANISM"] = "NOPE"
    with pytest.raises(SettingsError) as error:
        load_settings(ROOT, env)
    assert "s3cr3t-value" not in str(error.value)


def test_sasl_without_credentials_names_what_is_missing() -> None:
    env = {
        "BIOMETRICS_KAFKA__SECURITY_PROTOCOL": "SASL_SSL",
        "BIOMETRICS_KAFKA__SASL_MECHANISM": "PLAIN",
    }
    with pytest.raises(SettingsError, match="needs sasl_username, sasl_password"):
        load_settings(ROOT, env)


def test_confluent_cloud_is_configuration_alone() -> None:
    env = {
        "BIOMETRICS_KAFKA__BOOTSTRAP_SERVERS": "pkc-123.region.cloud:9092",
        "BIOMETRICS_KAFKA__SECURITY_PROTOCOL": "SASL_SSL",
        "BIOMETRICS_KAFKA__SASL_MECHANISM": "PLAIN",
        "BIOMETRICS_KAFKA__SASL_USERNAME": "key",
        "BIOMETRICS_KAFKA__SASL_PASSWORD": "secret",
    }
    options = client_options(load_settings(ROOT, env).kafka)
    assert options["security_protocol"] == "SASL_SSL"
    assert options["sasl_mechanism"] == "PLAIN"
    assert options["sasl_plain_password"] == "secret"
    assert options["ssl_context"] is not None


def test_a_missing_bootstrap_server_is_a_clear_error() -> None:
    with pytest.raises(KafkaNotConfiguredError, match="BIOMETRICS_KAFKA__BOOTSTRAP_SERVERS"):
        client_options(load_settings(ROOT, env={}).kafka)


def test_a_directory_without_settings_is_named(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match=f"settings.toml not found in {tmp_path}"):
        load_settings(tmp_path)


def test_requiring_api_keys_without_any_is_refused() -> None:
    env = {"BIOMETRICS_HTTP__REQUIRE_API_KEY": "true"}
    with pytest.raises(SettingsError, match="require_api_key is true but api_keys is empty"):
        load_settings(ROOT, env)


def test_api_keys_come_from_the_environment_and_stay_secret() -> None:
    env = {
        "BIOMETRICS_HTTP__REQUIRE_API_KEY": "true",
        "BIOMETRICS_HTTP__API_KEYS": '["first-key-0123456789", "second-key-0123456789"]',
    }
    settings = load_settings(ROOT, env)
    assert [k.get_secret_value() for k in settings.http.api_keys][1] == "second-key-0123456789"
    assert "second-key" not in repr(settings)


def test_the_tooling_variables_sharing_the_prefix_are_not_settings() -> None:
    env = {
        "BIOMETRICS_CONFIG_DIR": str(ROOT),
        "BIOMETRICS_CACHE_DIR": "/tmp/cache",
    }
    assert load_settings(env=env).kafka.topic == "BiometricsImported"


def test_an_unknown_top_level_variable_is_still_an_error() -> None:
    env = {"BIOMETRICS_TOPIC": "typo"}
    with pytest.raises(SettingsError, match="topic"):
        load_settings(ROOT, env)


def test_only_the_environment_given_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BIOMETRICS_KAFKA__TOPIC", "exported-by-a-developer")
    assert load_settings(ROOT, env={}).kafka.topic == "BiometricsImported"
    assert load_settings(ROOT).kafka.topic == "exported-by-a-developer"


def test_the_registry_is_off_by_default_and_its_login_is_a_secret_key_and_secret() -> None:
    assert load_settings(ROOT, env={}).schema_registry.url == ""
    login = {"BIOMETRICS_SCHEMA_REGISTRY__BASIC_AUTH_USER_INFO": "api-key:sr-s3cr3t"}
    registry = load_settings(ROOT, env=login).schema_registry
    assert registry.basic_auth_user_info.get_secret_value() == "api-key:sr-s3cr3t"
    assert "sr-s3cr3t" not in repr(registry)
    no_colon = {"BIOMETRICS_SCHEMA_REGISTRY__BASIC_AUTH_USER_INFO": "sr-s3cr3t-alone"}
    with pytest.raises(SettingsError, match="<key>:<secret>") as error:
        load_settings(ROOT, env=no_colon)
    assert "sr-s3cr3t-alone" not in str(error.value)
