"""The heart-rate zone processor: Biometrics in, HeartRateZoneReached out, exactly once, as a
member of a consumer group with a transactional producer per input partition."""
