"""ZoneTransform: one Biometrics record in, its zone events (or one dead letter) out.

The transform is pure: it only says what to produce, so the loop can produce it inside the
transaction that also carries the record's offset. A record that can never be decoded (no value,
larger than ``zones.max_record_bytes``, not JSON, not the schema) becomes a dead letter with the
carry of shared.kafka.records.dead_letter, instead of blocking its partition.

Each zone event carries the trace headers of its record (shared.runtime.tracing): copied as they
are, or, with tracing on, those of the record's span, which ends once its outputs are made.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

from aiokafka import ConsumerRecord

from shared.contracts.zones import zone_records
from shared.kafka.records import PoisonRecordError, SchemaIds, dead_letter, decode_record
from shared.runtime.settings import Settings
from shared.runtime.tracing import RecordSpans, end_span, trace_headers


class Output(NamedTuple):
    """What one record becomes: records (key, value) to produce to one topic, with these headers."""

    topic: str
    records: Sequence[tuple[bytes | None, bytes | None]]
    headers: list[tuple[str, bytes]]


class ZoneTransform:
    """Map a Biometrics record to its HeartRateZoneReached records, or to a dead letter."""

    def __init__(
        self,
        *,
        zones_topic: str,
        dead_letter_topic: str,
        max_record_bytes: int,
        schema_ids: SchemaIds | None = None,
        value_prefix: bytes = b"",
        spans: RecordSpans | None = None,
    ) -> None:
        self._zones_topic = zones_topic
        self._dead_letter_topic = dead_letter_topic
        self._max_record_bytes = max_record_bytes
        # Asked whether a framed record's schema id is unknown (the loop checks each batch first).
        self._schema_ids = schema_ids
        # The wire-format header of every zone event, with the registry on.
        self._prefix = value_prefix
        self._spans = spans

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        schema_ids: SchemaIds | None = None,
        value_prefix: bytes = b"",
        spans: RecordSpans | None = None,
    ) -> ZoneTransform:
        """The transform the settings describe."""
        return cls(
            zones_topic=settings.zones.topic,
            dead_letter_topic=settings.kafka.dead_letter_topic,
            max_record_bytes=settings.zones.max_record_bytes,
            schema_ids=schema_ids,
            value_prefix=value_prefix,
            spans=spans,
        )

    def __call__(self, record: ConsumerRecord[Any, Any]) -> Output:
        """The records to produce for this one: none when no reading reaches a zone."""
        spans = self._spans
        span = None if spans is None else spans.start(record)
        try:
            event, _ = decode_record(record, self._max_record_bytes, self._schema_ids)
        except PoisonRecordError as error:
            if span is not None:
                end_span(span, str(error))
            return self._dead_letter(record, str(error))
        if spans is None or span is None:
            carried = trace_headers(record.headers)
        else:
            carried = spans.carried_headers(span, record)
        zones = zone_records(event)
        if prefix := self._prefix:
            zones = [(key, prefix + value) for key, value in zones]
        if span is not None:
            span.set_attribute("biometrics.zone_events", len(zones))
            end_span(span)
        return Output(self._zones_topic, zones, carried)

    def _dead_letter(self, record: ConsumerRecord[Any, Any], reason: str) -> Output:
        key, value, headers = dead_letter(record, reason)
        return Output(self._dead_letter_topic, [(key, value)], headers)
