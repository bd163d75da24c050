"""ApiKeys: devices prove themselves with `Authorization: Bearer <key>` on ingestion routes.

401 without a usable key, 403 with a key that is not one of http.api_keys. Keys are compared in
constant time (hashed first, so not even their lengths leak); other routes stay open.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable

from producer_service.errors import ForbiddenError, UnauthorizedError


class ApiKeys:
    """The configured keys, kept as digests only."""

    def __init__(self, keys: Iterable[str]) -> None:
        self._digests = [_digest(key) for key in keys]

    def identify(self, authorization: str) -> int:
        """Which of the keys (its position, from 1) an Authorization header value names; raise
        UnauthorizedError without a key, ForbiddenError with an unknown one."""
        scheme, _, key = authorization.partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            challenge = {"WWW-Authenticate": 'Bearer realm="biometrics"'}
            raise UnauthorizedError(
                "an API key is needed: Authorization: Bearer <key>", headers=challenge
            )
        candidate = _digest(key.strip())
        found = 0
        # No early exit: every key is compared, every time.
        for number, digest in enumerate(self._digests, start=1):
            if hmac.compare_digest(candidate, digest):
                found = number
        if not found:
            raise ForbiddenError("the API key is not known")
        return found


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()
