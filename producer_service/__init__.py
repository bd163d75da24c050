"""The ingestion service: biometrics over HTTP into Kafka, answered once the broker acknowledges."""

from producer_service.app import create_app
from producer_service.publisher import Delivery, PublishError

__all__ = ["Delivery", "PublishError", "create_app"]
