"""The project's settings for a test: as a `Settings` object for a service run in the test's
event loop, or as the environment of a service run as a process."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, get_origin

from pydantic import BaseModel

from shared.runtime.settings import ENV_PREFIX, Settings, load_settings
from tests.support import ROOT

Changes = Mapping[str, Any]


def with_changes(settings: Settings, **sections: Changes) -> Settings:
    """`settings` with the fields given per section replaced: with_changes(s, http={...})."""
    replaced = {
        name: getattr(settings, name).model_copy(update=fields) for name, fields in sections.items()
    }
    return settings.model_copy(update=replaced)


def project_settings(**sections: Changes) -> Settings:
    """settings.toml's settings, with no environment, and the fields given per section replaced:
    project_settings(http={"body_timeout_s": 1.0})."""
    return with_changes(load_settings(ROOT, env={}), **sections)


def settings_for(
    bootstrap: str, topic: str, group_id: str, partitions: int = 3, **sections: Changes
) -> Settings:
    """The project's settings pointed at the test broker, topic and group (dead letters to
    `topic`.DLQ, probes on a free port), with the fields given per section replaced."""
    changes: dict[str, dict[str, Any]] = {
        "kafka": {
            "bootstrap_servers": bootstrap,
            "topic": topic,
            "dead_letter_topic": f"{topic}.DLQ",
            "topic_partitions": partitions,
        },
        "consumer": {"group_id": group_id, "poll_timeout_ms": 200, "probe_port": 0},
        "zones": {"probe_port": 0},
    }
    for name, fields in sections.items():
        changes[name] = changes.get(name, {}) | dict(fields)
    return project_settings(**changes)


def clean_env(**settings: str) -> dict[str, str]:
    """This process's environment without its BIOMETRICS_* variables, plus `settings` as theirs
    (kafka__topic="t" is BIOMETRICS_KAFKA__TOPIC=t): for a child process that must see the
    project's settings files, not what a developer exported."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BIOMETRICS_")}
    return env | {f"BIOMETRICS_{key.upper()}": value for key, value in settings.items()}


def service_env(bootstrap: str, topic: str, group_id: str, **settings: str) -> dict[str, str]:
    """The environment of a service process, pointed at the test broker, topic and group as
    settings_for is, with `settings` (as clean_env takes them) on top."""
    return clean_env(
        **{
            "KAFKA__BOOTSTRAP_SERVERS": bootstrap,
            "KAFKA__TOPIC": topic,
            "KAFKA__DEAD_LETTER_TOPIC": f"{topic}.DLQ",
            "CONSUMER__GROUP_ID": group_id,
            "HTTP__PORT": "0",
            "CONSUMER__PROBE_PORT": "0",
            "ZONES__PROBE_PORT": "0",
        }
        | {key.upper(): value for key, value in settings.items()}
    )


def setting_path(variable: str) -> tuple[str, ...] | None:
    """The settings field a BIOMETRICS_* variable sets, as its path ("kafka", "topic"), or None
    when it names none: BIOMETRICS_KAFKA__TOPIC_CONFIGS__RETENTION_MS sets one entry of a table."""
    path = tuple(variable.removeprefix(f"{ENV_PREFIX}_").lower().split("__"))
    model: type[BaseModel] = Settings
    for index, part in enumerate(path):
        if part not in model.model_fields:
            return None
        annotation = model.model_fields[part].annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            model = annotation  # a section: the next part names one of its fields
            continue
        # A value; or a table, one entry of which a last part may set (TOPIC_CONFIGS__RETENTION_MS).
        rest = path[index + 1 :]
        if not rest or (get_origin(annotation) is dict and len(rest) == 1):
            return path
        return None
    return None
