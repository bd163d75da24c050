"""Every client's arguments come from one module, and each says what its client needs."""

from __future__ import annotations

from shared.kafka.options import (
    consumer_options,
    dead_letter_producer_options,
    dedupe_reader_options,
    producer_options,
    transactional_producer_options,
    zone_consumer_options,
)
from shared.runtime.settings import Settings, load_settings
from tests.support import ROOT

_BROKER = {"BIOMETRICS_KAFKA__BOOTSTRAP_SERVERS": "broker:9092"}


def _settings(**env: str) -> Settings:
    return load_settings(ROOT, env=_BROKER | env)


def test_the_producer_follows_its_settings_and_none_compression_is_no_codec() -> None:
    settings = _settings(
        BIOMETRICS_PRODUCER__COMPRESSION_TYPE="none",
        BIOMETRICS_PRODUCER__ENABLE_IDEMPOTENCE="false",
        BIOMETRICS_PRODUCER__ACKS='"1"',
        BIOMETRICS_PRODUCER__LINGER_MS="7",
    )
    options = producer_options(settings)
    assert options["compression_type"] is None
    assert (options["acks"], options["enable_idempotence"], options["linger_ms"]) == (1, False, 7)
    assert options["bootstrap_servers"] == "broker:9092"
    lz4 = producer_options(_settings(BIOMETRICS_PRODUCER__COMPRESSION_TYPE="lz4"))
    assert lz4["compression_type"] == "lz4"


def test_dead_letters_and_transactions_are_acks_all_and_idempotent_whatever_producer_says() -> None:
    settings = _settings(
        BIOMETRICS_PRODUCER__ENABLE_IDEMPOTENCE="false", BIOMETRICS_PRODUCER__ACKS='"1"'
    )
    dead_letters = dead_letter_producer_options(settings)
    transactional = transactional_producer_options(settings, "zones-0")
    for options in (dead_letters, transactional):
        assert (options["acks"], options["enable_idempotence"]) == ("all", True)
    assert transactional["transactional_id"] == "zones-0"
    assert transactional["transaction_timeout_ms"] == settings.zones.transaction_timeout_ms
    # aiokafka's own default (100 ms) is paid after every refused transaction step.
    assert transactional["retry_backoff_ms"] == settings.zones.producer_retry_backoff_ms == 10
    assert transactional["compression_type"] == producer_options(settings)["compression_type"]


def test_consumers_commit_by_hand_and_the_zone_consumer_reads_committed_in_its_group() -> None:
    settings = _settings(BIOMETRICS_CONSUMER__MAX_RECORD_BYTES="2000000")
    events, zones = consumer_options(settings), zone_consumer_options(settings)
    assert events["enable_auto_commit"] is False
    assert events["group_id"] == settings.consumer.group_id
    # A poison record bigger than max_record_bytes must still be fetched, to be set aside.
    assert events["max_partition_fetch_bytes"] >= 4 * 2_000_000
    assert "isolation_level" not in events
    assert (zones["group_id"], zones["isolation_level"]) == (
        settings.zones.group_id,
        "read_committed",
    )
    assert zones["enable_auto_commit"] is False


def test_the_zone_consumer_follows_zones_and_not_consumer() -> None:
    settings = _settings(
        BIOMETRICS_CONSUMER__MAX_POLL_RECORDS="7",
        BIOMETRICS_CONSUMER__MAX_RECORD_BYTES="2000000",
        BIOMETRICS_ZONES__MAX_POLL_RECORDS="11",
        BIOMETRICS_ZONES__SESSION_TIMEOUT_MS="6000",
        BIOMETRICS_ZONES__AUTO_OFFSET_RESET="latest",
    )
    zones = zone_consumer_options(settings)
    assert (zones["max_poll_records"], zones["session_timeout_ms"]) == (11, 6000)
    assert zones["auto_offset_reset"] == "latest"
    assert zones["max_partition_fetch_bytes"] == 4 * settings.zones.max_record_bytes


def test_the_dedupe_reader_is_in_no_group_commits_nothing_and_reads_as_its_member_does() -> None:
    kafka = _settings().kafka
    for read_committed, isolation in ((False, "read_uncommitted"), (True, "read_committed")):
        options = dedupe_reader_options(kafka, read_committed=read_committed)
        assert (options["group_id"], options["enable_auto_commit"]) == (None, False)
        assert options["isolation_level"] == isolation
        assert options["bootstrap_servers"] == "broker:9092"
