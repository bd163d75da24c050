"""Errors of the local Kafka tooling.

LocalKafkaError(RuntimeError) -- Maven, Java or the broker failed; the message says why.
"""

from __future__ import annotations

__all__ = ["LocalKafkaError"]


class LocalKafkaError(RuntimeError):
    """Maven, Java or the broker failed to do what LocalKafka needed."""
