"""Time-ordered ids (UUIDv7, RFC 9562), made on the client so that a retry of a record
is always the same record: the server stores an id once, whatever reaches it twice."""

from __future__ import annotations

import os
import threading
import time
import uuid

_lock = threading.Lock()
_last = 0  # (milliseconds << 12) | counter of the last id made in this process


def uuid7() -> str:
    """A UUIDv7: 48 bits of Unix milliseconds, then a 12-bit counter that keeps ids made
    in the same millisecond in order (RFC 9562, method 1), then 62 random bits."""
    global _last
    with _lock:
        candidate = time.time_ns() // 1_000_000 << 12
        _last = candidate if candidate > _last else _last + 1  # the clock may step back
        stamp = _last
    milliseconds, counter = stamp >> 12, stamp & 0xFFF
    random_bits = int.from_bytes(os.urandom(8), "big") & ((1 << 62) - 1)
    value = (
        (milliseconds & ((1 << 48) - 1)) << 80
        | 0x7 << 76  # version
        | counter << 64
        | 0b10 << 62  # variant
        | random_bits
    )
    return str(uuid.UUID(int=value))
