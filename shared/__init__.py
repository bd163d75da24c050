"""What the services share: the event schema, the settings, Kafka client options, records and
logging; each imported from its own module (shared.schema, shared.settings, ...)."""
