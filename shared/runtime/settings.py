"""Settings for both services: loaded by dynaconf, validated by pydantic, passed down explicitly.

Sources, later ones winning: ``settings.toml``, ``.secrets.toml`` (both in the config directory,
``BIOMETRICS_CONFIG_DIR`` or the working directory), then environment variables
``BIOMETRICS_<SECTION>__<KEY>``. Values from the environment are parsed as TOML (``6`` is an int).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from dynaconf import Dynaconf
from dynaconf.utils.parse_conf import boolean_fix, parse_conf_data
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from shared.contracts.schema import location
from shared.runtime.logs import LogFormat

__all__ = [
    "ENV_PREFIX",
    "ConsumerSettings",
    "HttpSettings",
    "KafkaSettings",
    "ProducerSettings",
    "SchemaRegistrySettings",
    "Settings",
    "SettingsError",
    "TracingSettings",
    "ZonesSettings",
    "load_settings",
]

ENV_PREFIX = "BIOMETRICS"
CONFIG_DIR_VARIABLE = "BIOMETRICS_CONFIG_DIR"
# Variables that share the prefix but configure the tooling, not the services.
_NOT_SETTINGS = frozenset({"config_dir", "cache_dir"})
SETTINGS_FILES = ("settings.toml", ".secrets.toml")


class SettingsError(Exception):
    """The configuration is missing or invalid; the message names every bad key, never a value."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class KafkaSettings(_Section):
    """Connection and topic: shared by the producer and the consumer."""

    bootstrap_servers: str
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
    sasl_mechanism: Literal["", "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]
    sasl_username: SecretStr
    sasl_password: SecretStr
    ssl_cafile: str
    client_id: str = Field(min_length=1)
    topic: str = Field(min_length=1, max_length=249, pattern=r"^[A-Za-z0-9._-]+$")
    dead_letter_topic: str = Field(min_length=1, max_length=249, pattern=r"^[A-Za-z0-9._-]+$")
    topic_partitions: int = Field(ge=1)
    topic_replication_factor: int = Field(ge=1)
    request_timeout_ms: int = Field(ge=1000)
    connect_retry_s: float = Field(gt=0)
    topic_configs: dict[str, int | str]
    dead_letter_topic_configs: dict[str, int | str]

    def configs_for(self, topic: str) -> dict[str, str]:
        """Kafka topic configs for a topic the services create, with Kafka's dotted names."""
        configs = dict(self.topic_configs)
        if topic == self.dead_letter_topic:
            configs |= self.dead_letter_topic_configs
        return {name.replace("_", "."): str(value) for name, value in configs.items()}

    @model_validator(mode="after")
    def _sasl_is_complete(self) -> KafkaSettings:
        if self.security_protocol.startswith("SASL_"):
            missing = [
                name
                for name, value in (
                    ("sasl_mechanism", self.sasl_mechanism),
                    ("sasl_username", self.sasl_username.get_secret_value()),
                    ("sasl_password", self.sasl_password.get_secret_value()),
                )
                if not value
            ]
            if missing:
                raise ValueError(
                    f"security_protocol {self.security_protocol} needs {', '.join(missing)}"
                )
        if self.dead_letter_topic == self.topic:
            raise ValueError("dead_letter_topic must differ from topic")
        if self.ssl_cafile and not Path(self.ssl_cafile).is_file():
            raise ValueError("ssl_cafile does not name a readable file")
        return self


class ProducerSettings(_Section):
    """aiokafka producer tuning; the defaults favour durability."""

    acks: Literal["all", "1"] = "all"
    enable_idempotence: bool
    linger_ms: int = Field(ge=0)
    max_batch_size: int = Field(ge=1024)
    compression_type: Literal["none", "gzip", "snappy", "lz4", "zstd"]
    delivery_timeout_ms: int = Field(ge=1)
    max_in_flight_records: int = Field(ge=1)
    max_in_flight_bytes: int = Field(ge=1024)

    @field_validator("acks", mode="before")
    @classmethod
    def _acks_as_text(cls, value: Any) -> Any:
        # BIOMETRICS_PRODUCER__ACKS=1 arrives as the number 1.
        if str(value) == "0":
            raise ValueError(
                'acks = "0" is refused: a 202 says the broker has the record, and with acks 0 '
                "the broker never says so"
            )
        return str(value) if isinstance(value, int) else value

    @model_validator(mode="after")
    def _idempotence_needs_acks_all(self) -> ProducerSettings:
        if self.enable_idempotence and self.acks != "all":
            raise ValueError('enable_idempotence needs acks = "all"')
        return self


class _GroupMemberSettings(_Section):
    """What each Kafka loop's consumer is set up with: its group, how it fetches and polls, how
    long its last batch may take at shutdown, the largest record it decodes, and its probes."""

    group_id: str = Field(min_length=1)
    auto_offset_reset: Literal["earliest", "latest"]
    max_poll_records: int = Field(ge=1)
    poll_timeout_ms: int = Field(ge=1)
    fetch_min_bytes: int = Field(ge=1)
    fetch_max_wait_ms: int = Field(ge=0)
    session_timeout_ms: int = Field(ge=1000)
    shutdown_timeout_s: float = Field(gt=0)
    max_record_bytes: int = Field(ge=1024)
    retry_backoff_ms: int = Field(ge=0)
    probe_host: str = Field(min_length=1)
    probe_port: int = Field(ge=0, le=65535)
    dedupe_records: int = Field(ge=0)
    dedupe_window_s: float = Field(gt=0)


class ConsumerSettings(_GroupMemberSettings):
    """The consumer; offsets are always committed by hand after handling."""

    handler_retries: int = Field(ge=0)


class HttpSettings(_Section):
    """The producer's HTTP server and request limits."""

    host: str = Field(min_length=1)
    port: int = Field(ge=0, le=65535)
    max_body_bytes: int = Field(ge=1)
    max_batch_events: int = Field(ge=1)
    body_timeout_s: float = Field(gt=0)
    shutdown_timeout_s: float = Field(gt=0)
    require_api_key: bool
    api_keys: list[SecretStr]
    device_rate_per_s: float = Field(ge=0)
    device_burst: int = Field(ge=1)
    require_idempotency_key: bool
    idempotency_window_s: float = Field(gt=0)
    idempotency_max_bytes: int = Field(ge=0)
    access_log: bool

    @model_validator(mode="after")
    def _keys_when_required(self) -> HttpSettings:
        if self.require_api_key and not self.api_keys:
            raise ValueError("require_api_key is true but api_keys is empty")
        if any(len(key.get_secret_value()) < 16 for key in self.api_keys):
            raise ValueError("every api_keys entry must be at least 16 characters long")
        return self


class SchemaRegistrySettings(_Section):
    """A Confluent-compatible Schema Registry; an empty url turns it off."""

    url: str
    basic_auth_user_info: SecretStr
    ssl_cafile: str
    timeout_s: float = Field(gt=0)
    # Set on each subject the services register under; "" leaves the registry's own.
    compatibility: Literal[
        "",
        "NONE",
        "BACKWARD",
        "BACKWARD_TRANSITIVE",
        "FORWARD",
        "FORWARD_TRANSITIVE",
        "FULL",
        "FULL_TRANSITIVE",
    ]

    @model_validator(mode="after")
    def _user_info_is_key_and_secret(self) -> SchemaRegistrySettings:
        user_info = self.basic_auth_user_info.get_secret_value()
        if user_info and ":" not in user_info:
            raise ValueError('basic_auth_user_info must be "<key>:<secret>"')
        return self


class LoggingSettings(_Section):
    """Log level and line format of both services."""

    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"]
    format: LogFormat


class ZonesSettings(_GroupMemberSettings):
    """The heart-rate zone processor: its output topic and transactions, besides its consumer's."""

    topic: str = Field(min_length=1, max_length=249, pattern=r"^[A-Za-z0-9._-]+$")
    transaction_timeout_ms: int = Field(ge=1000)
    producer_retry_backoff_ms: int = Field(ge=0, le=60000)


class TracingSettings(_Section):
    """OpenTelemetry spans: which exporter sends them; empty makes none (headers still flow)."""

    exporter: Literal["", "otlp", "console"]


class Settings(_Section):
    """Everything both services can be configured with."""

    kafka: KafkaSettings
    producer: ProducerSettings
    consumer: ConsumerSettings
    http: HttpSettings
    zones: ZonesSettings
    logging: LoggingSettings
    schema_registry: SchemaRegistrySettings
    tracing: TracingSettings

    def with_bootstrap_servers(self, bootstrap_servers: str) -> Settings:
        """Return a copy pointing at other brokers (used when a local Kafka is started)."""
        kafka = self.kafka.model_copy(update={"bootstrap_servers": bootstrap_servers})
        return self.model_copy(update={"kafka": kafka})


def load_settings(config_dir: Path | None = None, env: Mapping[str, str] | None = None) -> Settings:
    """Load and validate the settings; raise SettingsError naming each bad key.

    `env` is the environment whose BIOMETRICS_* variables override the files (default
    os.environ); tests pass their own, so what a developer exported changes nothing.
    """
    env = os.environ if env is None else env
    directory = config_dir or Path(env.get(CONFIG_DIR_VARIABLE) or Path.cwd())
    if not (directory / SETTINGS_FILES[0]).is_file():
        raise SettingsError(
            f"{SETTINGS_FILES[0]} not found in {directory}; "
            f"run from the project directory or set {CONFIG_DIR_VARIABLE}"
        )
    # Dynaconf reads the files only (envvar_prefix=None); the overrides come from `env`, each
    # set as Dynaconf would: parsed as TOML, `__` nesting, merged into the files' tables.
    loaded = Dynaconf(
        envvar_prefix=None,
        root_path=str(directory),
        settings_files=[str(directory / name) for name in SETTINGS_FILES],
        merge_enabled=True,
    )
    prefix = f"{ENV_PREFIX}_"
    for name, value in env.items():
        if name.startswith(prefix) and name[len(prefix) :].lower() not in _NOT_SETTINGS:
            parsed = parse_conf_data(boolean_fix(value), tomlfy=True, box_settings=loaded)
            loaded.set(name[len(prefix) :], parsed)
    values = _lower_keys(loaded.as_dict())
    try:
        return Settings.model_validate(values)
    except ValidationError as error:
        raise SettingsError(_describe(error)) from None


def _lower_keys(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(key).lower(): _lower_keys(item) for key, item in value.items()}
    return value


def _describe(error: ValidationError) -> str:
    # Locations and messages only: pydantic's own text echoes input values, which may be secrets.
    lines = []
    for item in error.errors(include_input=False, include_url=False):
        key = location(item["loc"]) or "settings"
        variable = f"{ENV_PREFIX}_{'__'.join(str(part).upper() for part in item['loc'])}"
        lines.append(f"{key} ({variable}): {item['msg']}")
    return "invalid settings:\n  " + "\n  ".join(lines)
