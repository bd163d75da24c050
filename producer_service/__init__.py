"""The ingestion service: biometrics over HTTP into Kafka, answered once the broker acknowledges."""

from producer_service.app import create_app
from producer_service.publisher import Delivery, KafkaPublisher, Publisher, PublishError

__all__ = ["Delivery", "KafkaPublisher", "PublishError", "Publisher", "create_app"]
