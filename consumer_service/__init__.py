"""The consuming service: read Biometrics events, log each as JSON, commit after handling."""

from consumer_service.lines import EVENT_CONSUMED
from consumer_service.loop import Committer, PendingOffsets, RebalanceHandler, consume
from consumer_service.metrics import ConsumerMetrics
from consumer_service.processor import RecordProcessor
from consumer_service.service import run_consumer
from consumer_service.sink import StreamSink

__all__ = [
    "EVENT_CONSUMED",
    "Committer",
    "ConsumerMetrics",
    "PendingOffsets",
    "RebalanceHandler",
    "RecordProcessor",
    "StreamSink",
    "consume",
    "run_consumer",
]
