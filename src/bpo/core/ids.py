"""Time-ordered identifiers (UUIDv7, RFC 9562), made in Python so PostgreSQL 15 suffices."""

from __future__ import annotations

import os
import threading
import time
import uuid

_lock = threading.Lock()
_last_ms = 0
_seq = 0


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
            _seq = int.from_bytes(os.urandom(2), "big") & 0x3FF  # leave headroom to count up
        seq = _seq
    rand = int.from_bytes(os.urandom(8), "big") & ((1 << 62) - 1)
    value = (now_ms & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76  # version
    value |= seq << 64
    value |= 0b10 << 62  # RFC 4122 variant
    value |= rand
    return uuid.UUID(int=value)
