"""What the services share, in three folders that name the architecture: the event contracts
(shared.contracts), Kafka as every service uses it (shared.kafka) and what every service runs on
(shared.runtime). Each folder's __all__ lists its modules; each module's, what the rest imports."""
