"""The consuming service: read Biometrics events, log each as JSON, commit after handling."""

from consumer_service.dead_letters import DeadLetterPublisher, DeadLetters
from consumer_service.loop import (
    Committer,
    PendingOffsets,
    RebalanceHandler,
    RecordHandler,
    RecordSource,
    consume,
)
from consumer_service.metrics import ConsumerMetrics
from consumer_service.processor import RecordProcessor
from consumer_service.service import run_consumer
from consumer_service.sink import Sink, StreamSink

__all__ = [
    "Committer",
    "ConsumerMetrics",
    "DeadLetterPublisher",
    "DeadLetters",
    "PendingOffsets",
    "RebalanceHandler",
    "RecordHandler",
    "RecordProcessor",
    "RecordSource",
    "Sink",
    "StreamSink",
    "consume",
    "run_consumer",
]
