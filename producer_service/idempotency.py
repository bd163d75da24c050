"""Idempotency keys (draft-ietf-httpapi-idempotency-key-header): a device's retry of a request
gets the first request's answer, and nothing is produced again.

A key is 1 to 128 of ``A-Z a-z 0-9 . _ : -``, sent as the header's Structured Field string
(``Idempotency-Key: "4f1c..."``) or bare. Each producer instance remembers, for
http.idempotency_window_s and within http.idempotency_max_bytes, each key's request (a digest of
its path and body) and its 202. A retry with the same key:

- after the first was acknowledged: the same 202 body (the same partitions and offsets), with
  ``Idempotent-Replayed: true``; nothing is produced;
- while the first is still under way: waits for it, and gets its answer;
- with another body or path: 422 ``idempotency_key_reused``.

A request that is not answered 202 is not remembered: its retry is produced anew (a 503 may still
have stored the records; the consumers drop such copies by the key the records carry).
"""

from __future__ import annotations

import asyncio
import string
import time
from collections.abc import Awaitable, Callable
from typing import ParamSpec

from producer_service.errors import (
    IdempotencyKeyReusedError,
    InvalidIdempotencyKeyError,
    RawHeaders,
)

Answer = tuple[bytes, RawHeaders]
_P = ParamSpec("_P")

_KEY_CHARACTERS = (string.ascii_letters + string.digits + "._:-").encode()
REPLAYED: RawHeaders = ((b"idempotent-replayed", b"true"),)
# What an entry costs besides its answer's bytes (a 36-character key, the digest, the dict slot,
# the entry), as tracemalloc counts it (tests/unit/test_idempotency_keys.py).
ENTRY_OVERHEAD_BYTES = 370


def parse_key(raw: bytes) -> bytes:
    """The key of an Idempotency-Key header value, as the records carry it;
    InvalidIdempotencyKeyError (400) if it is not one."""
    key = raw.strip()
    if key[:1] == b'"' and key[-1:] == b'"' and len(key) >= 2:
        key = key[1:-1]
    # Deleting every allowed character leaves nothing of a valid key (in C, per byte).
    if not 1 <= len(key) <= 128 or key.translate(None, _KEY_CHARACTERS):
        raise InvalidIdempotencyKeyError(
            "Idempotency-Key must be 1 to 128 of A-Z a-z 0-9 . _ : - (quoted or not)"
        )
    return key


def fingerprint(path: str, body: bytes) -> int:
    """What identifies a request under its key: its path and its body, as sent (a 64-bit hash,
    kept in this process only)."""
    return hash(body) ^ hash(path)


# An answered request: (fingerprint, when it was first seen, its 202 body, what it is counted).
# A tuple of numbers and bytes, which the garbage collector stops tracking: a full store adds
# nothing to the work of each collection.
_Answered = tuple[int, float, bytes, int]
# A request's key: the API key's number (0 without API keys) and its Idempotency-Key.
Key = tuple[int, bytes]


class IdempotencyKeys:
    """The requests of the keys seen within the window, oldest first."""

    def __init__(
        self, window_s: float, max_bytes: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._window_s = window_s
        self._max_bytes = max_bytes
        self._clock = clock
        # The requests under way: their fingerprints; and, only for those a retry waits on, a
        # future of the 202 body.
        self._pending: dict[Key, int] = {}
        self._waiters: dict[Key, asyncio.Future[bytes]] = {}
        # Insertion-ordered: the oldest first.
        self._answered: dict[Key, _Answered] = {}
        self._bytes = 0
        # Expired entries are looked for at most this often (the window's hundredth, up to 1 s).
        self._sweep_every = min(window_s / 100, 1.0)
        self._next_sweep = 0.0
        self.replayed = 0  # retries answered from memory
        self.waited = 0  # retries that arrived while their first request was under way
        self.reused = 0  # keys sent again with another request (422)

    def __len__(self) -> int:
        return len(self._answered) + len(self._pending)

    @property
    def held_bytes(self) -> int:
        """What the remembered answers cost, as counted against http.idempotency_max_bytes."""
        return self._bytes

    async def answer(
        self,
        key: Key,
        digest: int,
        produce: Callable[_P, Awaitable[Answer]],
        *args: _P.args,
        **kwargs: _P.kwargs,
    ) -> Answer:
        """The answer of the key's request: its first request's 202 (a retry, which waits while
        the first is under way), or produced now by `produce(*args, **kwargs)` and remembered;
        a request whose `produce` raises is forgotten. IdempotencyKeyReusedError (422) for a key
        sent with another request."""
        # produce and its arguments, not a closure: no function is made for each request.
        found = self._replay(key, digest)
        if found is None:
            try:
                answer = await produce(*args, **kwargs)
            except BaseException:
                self._failed(key)
                raise
            self._remember(key, answer[0])
            return answer
        if isinstance(found, bytes):
            return found, REPLAYED
        await asyncio.wait([found])
        if found.cancelled():
            # The first request failed: this retry is a new request.
            return await self.answer(key, digest, produce, *args, **kwargs)
        self.replayed += 1
        return found.result(), REPLAYED

    def _replay(self, key: Key, digest: int) -> bytes | asyncio.Future[bytes] | None:
        """What a request with this key gets before anything is produced: the 202 body it was
        answered (a replay), a future of it (its first request is under way), or None (a new
        request: produce it, then `_remember` or `_failed`)."""
        answered = self._answered.get(key)
        if answered is not None:
            self._check(answered[0], digest)
            self.replayed += 1
            return answered[2]
        pending = self._pending.get(key)
        if pending is None:
            self._pending[key] = digest
            return None
        self._check(pending, digest)
        self.waited += 1
        waiters = self._waiters.get(key)
        if waiters is None:
            waiters = self._waiters[key] = asyncio.get_running_loop().create_future()
        return waiters

    def _remember(self, key: Key, body: bytes) -> None:
        """The new request of `key` was answered 202 with `body`."""
        digest = self._pending.pop(key)
        now = self._clock()
        size = ENTRY_OVERHEAD_BYTES + len(body)
        self._answered[key] = (digest, now, body, size)
        self._bytes += size
        if self._waiters and (waiters := self._waiters.pop(key, None)) is not None:
            waiters.set_result(body)
        if self._bytes > self._max_bytes or now >= self._next_sweep:
            self._forget(now)

    def _failed(self, key: Key) -> None:
        """The new request of `key` was not answered 202: forget it (its waiters produce)."""
        del self._pending[key]
        if (waiters := self._waiters.pop(key, None)) is not None:
            waiters.cancel()

    def _check(self, remembered: int, digest: int) -> None:
        if remembered != digest:
            self.reused += 1
            raise IdempotencyKeyReusedError(
                "this Idempotency-Key was sent with another request (path or body); a retry "
                "must repeat the request exactly, a new request needs a new key"
            )

    def _forget(self, now: float) -> None:
        """Drop the answers older than the window; over max_bytes, the oldest down to 90% of it
        (so that a full store does not evict on every request)."""
        self._next_sweep = now + self._sweep_every
        allowed = self._max_bytes if self._bytes <= self._max_bytes else self._max_bytes * 0.9
        held, gone = self._bytes, []
        for key, (_, created, _, size) in self._answered.items():
            if now - created <= self._window_s and held <= allowed:
                break
            gone.append(key)
            held -= size
        for key in gone:
            del self._answered[key]
        self._bytes = held
