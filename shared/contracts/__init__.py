"""The event contracts: the Biometrics event, the heart-rate zones and the HeartRateZoneReached
event, and the AsyncAPI document of the topics that carry them."""

__all__ = [
    "asyncapi",
    "asyncapi_messages",
    "schema",
    "zones",
]
