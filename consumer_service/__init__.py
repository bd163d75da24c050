"""The consuming service: read Biometrics events, log each as JSON, commit after handling."""

from consumer_service.dead_letters import DeadLetterPublisher, DeadLetters
from consumer_service.lines import EVENT_CONSUMED
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
from consumer_service.service import CONSUMER_STARTED, run_consumer
from consumer_service.sink import Sink, StreamSink

__all__ = [
    "CONSUMER_STARTED",
    "EVENT_CONSUMED",
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
