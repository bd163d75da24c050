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
import hashlib
import re
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from producer_service.errors import IdempotencyKeyReusedError, InvalidIdempotencyKeyError

RawHeaders = tuple[tuple[bytes, bytes], ...]
Answer = tuple[bytes, RawHeaders]

KEY_PATTERN = re.compile(rb'^"?([A-Za-z0-9._:-]{1,128})"?$')
REPLAYED: RawHeaders = ((b"idempotent-replayed", b"true"),)
# What an entry costs besides its answer's bytes (a 36-character key, the digest, the dict slot,
# the entry), as tracemalloc counts it (tests/unit/test_idempotency_keys.py).
ENTRY_OVERHEAD_BYTES = 425


def parse_key(raw: bytes) -> str:
    """The key of an Idempotency-Key header value; InvalidIdempotencyKeyError (400) if it is not
    one."""
    match = KEY_PATTERN.match(raw.strip())
    if match is None or raw.strip().count(b'"') == 1:
        raise InvalidIdempotencyKeyError(
            "Idempotency-Key must be 1 to 128 of A-Z a-z 0-9 . _ : - (quoted or not)"
        )
    return match.group(1).decode()


def fingerprint(path: str, body: bytes) -> bytes:
    """What identifies a request under its key: its path and its body, as sent."""
    return hashlib.blake2b(body, digest_size=16, person=path.encode()[:16]).digest()


@dataclass(slots=True)
class _Entry:
    fingerprint: bytes
    created: float
    # The request's answer: awaited while it is under way, then its body alone is kept.
    answered: asyncio.Future[Answer] | None
    body: bytes | None = None
    size: int = ENTRY_OVERHEAD_BYTES


class IdempotencyKeys:
    """The requests of the keys seen within the window, oldest first."""

    def __init__(
        self, window_s: float, max_bytes: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._window_s = window_s
        self._max_bytes = max_bytes
        self._clock = clock
        self._entries: OrderedDict[tuple[int, str], _Entry] = OrderedDict()
        self._bytes = 0
        self.replayed = 0  # retries answered from memory
        self.waited = 0  # retries that arrived while their first request was under way
        self.reused = 0  # keys sent again with another request (422)

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def held_bytes(self) -> int:
        """What the remembered answers cost, as counted against http.idempotency_max_bytes."""
        return self._bytes

    async def answer(
        self, key: tuple[int, str], digest: bytes, produce: Callable[[], Awaitable[Answer]]
    ) -> Answer:
        """The answer of the key's first request: produced now by `produce`, or remembered."""
        self._forget(self._clock())
        while (entry := self._entries.get(key)) is not None:
            if entry.fingerprint != digest:
                self.reused += 1
                raise IdempotencyKeyReusedError(
                    "this Idempotency-Key was sent with another request (path or body); a retry "
                    "must repeat the request exactly, a new request needs a new key"
                )
            if entry.body is not None:
                self.replayed += 1
                return entry.body, REPLAYED
            pending = entry.answered
            assert pending is not None
            self.waited += 1
            # The first request's outcome; if it fails, it is forgotten and this one produces.
            await asyncio.wait([pending])
            if not pending.cancelled() and pending.exception() is None:
                self.replayed += 1
                return pending.result()[0], REPLAYED
        answered: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()
        entry = _Entry(digest, self._clock(), answered)
        self._entries[key] = entry
        self._bytes += entry.size
        try:
            answer = await produce()
        except BaseException:
            self._drop(key, entry)
            answered.cancel()
            raise
        answered.set_result(answer)
        entry.answered, entry.body = None, answer[0]
        entry.size += len(answer[0])
        self._bytes += len(answer[0])
        self._forget(self._clock())
        return answer

    def _drop(self, key: tuple[int, str], entry: _Entry) -> None:
        if self._entries.get(key) is entry:
            del self._entries[key]
            self._bytes -= entry.size

    def _forget(self, now: float) -> None:
        """Drop the answered entries older than the window, and the oldest answered ones while
        the answers take more than max_bytes."""
        entries = self._entries
        while entries:
            key, entry = next(iter(entries.items()))
            expired = now - entry.created > self._window_s
            if not (expired or self._bytes > self._max_bytes) or entry.body is None:
                return
            del entries[key]
            self._bytes -= entry.size
