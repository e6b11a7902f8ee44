"""Time-ordered ids (UUIDv7, RFC 9562), made on the client so that a retry of a record
is always the same record: the server stores an id once, whatever reaches it twice."""

from __future__ import annotations

import random
import threading
import time

_lock = threading.Lock()
_last = 0  # (milliseconds << 12) | counter of the last id made in this process
# random's generator is seeded from the OS at start-up and again in a forked child, so
# processes draw apart. Ids must be unique, not secret (only an API key may post them).
_bits = random.getrandbits


def uuid7() -> str:
    """A UUIDv7: 48 bits of Unix milliseconds, then a 12-bit counter that keeps ids made
    in the same millisecond in order (RFC 9562, method 1), then 62 random bits."""
    global _last
    with _lock:
        candidate = time.time_ns() // 1_000_000 << 12
        _last = candidate if candidate > _last else _last + 1  # the clock may step back
        stamp = _last
    milliseconds, counter = stamp >> 12 & (1 << 48) - 1, stamp & 0xFFF
    value = milliseconds << 80 | 0x7 << 76 | counter << 64 | 0b10 << 62 | _bits(62)
    text = f"{value:032x}"
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"
