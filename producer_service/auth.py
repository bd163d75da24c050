"""ApiKeyGuard: devices prove themselves with `Authorization: Bearer <key>` on ingestion routes.

401 without a usable key, 403 with a key that is not one of http.api_keys. Keys are compared in
constant time (hashed first, so not even their lengths leak); other routes stay open.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Collection, Sequence

from pydantic import SecretStr
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from producer_service.errors import ForbiddenError, UnauthorizedError, render


class ApiKeyGuard:
    """Pure ASGI middleware guarding the given paths."""

    def __init__(self, app: ASGIApp, keys: Sequence[SecretStr], paths: Collection[str]) -> None:
        self.app = app
        self.paths = frozenset(paths)
        self._digests = [_digest(key.get_secret_value()) for key in keys]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] in self.paths:
            error = self._refusal(Request(scope))
            if error is not None:
                await render(error, Request(scope))(scope, receive, send)
                return
        await self.app(scope, receive, send)

    def _refusal(self, request: Request) -> UnauthorizedError | ForbiddenError | None:
        scheme, _, key = request.headers.get("authorization", "").partition(" ")
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
