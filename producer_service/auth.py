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

    def refusal(self, authorization: str) -> UnauthorizedError | ForbiddenError | None:
        """Why an Authorization header value is refused, or None when its key is known."""
        scheme, _, key = authorization.partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            challenge = {"WWW-Authenticate": 'Bearer realm="biometrics"'}
            return UnauthorizedError(
                "an API key is needed: Authorization: Bearer <key>", headers=challenge
            )
        candidate = _digest(key.strip())
        known = False
        for digest in self._digests:  # no early exit: every key is compared, every time
            known |= hmac.compare_digest(candidate, digest)
        return None if known else ForbiddenError("the API key is not known")


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()
