"""How zone processor instances share the input: partitions, transactional ids, their limits."""

from __future__ import annotations

import pytest

from consumer_service.zones import instance_partitions
from shared.settings import Settings, SettingsError, load_settings
from tests.support import ROOT


def test_instances_split_the_partitions_by_remainder() -> None:
    assert [instance_partitions(range(6), i, 4) for i in range(4)] == [[0, 4], [1, 5], [2], [3]]


def test_the_transactional_id_is_the_group_and_the_instance_number(settings: Settings) -> None:
    zones = settings.zones.model_copy(update={"group_id": "g", "instance": 3, "instances": 4})
    assert zones.transactional_id == "g-3"


def test_an_instance_number_beyond_the_instances_is_refused() -> None:
    env = {"BIOMETRICS_ZONES__INSTANCE": "2", "BIOMETRICS_ZONES__INSTANCES": "2"}
    with pytest.raises(
        SettingsError, match=r"zones \(BIOMETRICS_ZONES\): .*instance must be below"
    ):
        load_settings(ROOT, env)
