"""The consuming service: read Biometrics events, log each as JSON, commit after handling."""

from consumer_service.handler import log_record
from consumer_service.loop import RecordSource, consume
from consumer_service.service import consumer_options, run_consumer

__all__ = ["RecordSource", "consume", "consumer_options", "log_record", "run_consumer"]
