"""Developer tooling: a real local Apache Kafka broker for tests and manual runs."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from devtools.local_kafka import LocalKafka, ensure_kafka_classpath

__all__ = ["LocalKafka", "ensure_kafka_classpath"]


def __getattr__(name: str) -> object:
    # Imported lazily so `python -m devtools.local_kafka` does not load the module twice
    # (runpy warns when the package __init__ has already imported the module it is to run).
    if name in __all__:
        from devtools import local_kafka

        return getattr(local_kafka, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
