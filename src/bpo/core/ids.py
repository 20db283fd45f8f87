"""Time-ordered identifiers (UUIDv7, RFC 9562), made in Python so PostgreSQL 15 suffices."""

from __future__ import annotations

import os
import threading
import time
import uuid

_lock = threading.Lock()
_last_ms = 0
_seq = 0
# Random bytes drawn from the OS a page at a time: one getrandom() call per 409 ids instead
# of two per id (a syscall each, and the hottest line of the token endpoint's profile).
_POOL_BYTES = 4096
_pool = b""
_pool_at = 0


def _random(n: int) -> int:
    global _pool, _pool_at
    if _pool_at + n > len(_pool):
        _pool, _pool_at = os.urandom(_POOL_BYTES), 0
    chunk = _pool[_pool_at : _pool_at + n]
    _pool_at += n
    return int.from_bytes(chunk, "big")


def _forget_pool() -> None:  # a forked child must not reuse its parent's bytes
    global _pool, _pool_at
    _pool, _pool_at = b"", 0


os.register_at_fork(after_in_child=_forget_pool)


def uuid7() -> uuid.UUID:
    """A UUIDv7: 48-bit Unix milliseconds, then a 12-bit counter, then 62 random bits.

    The counter (RFC 9562 §6.2 method 1) keeps ids made in the same millisecond by this
    process strictly increasing, so they sort in creation order.
    """
    global _last_ms, _seq
    with _lock:
        now_ms = time.time_ns() // 1_000_000
        if now_ms <= _last_ms:
            _seq += 1
            if _seq > 0xFFF:  # counter exhausted: borrow the next millisecond
                _last_ms += 1
                _seq = 0
            now_ms = _last_ms
        else:
            _last_ms = now_ms
            _seq = _random(2) & 0x3FF  # leave headroom to count up
        seq = _seq
        rand = _random(8) & ((1 << 62) - 1)
    value = (now_ms & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76  # version
    value |= seq << 64
    value |= 0b10 << 62  # RFC 4122 variant
    value |= rand
    return uuid.UUID(int=value)
