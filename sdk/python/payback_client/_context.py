"""What a block of code records for: the customer, feature, end user and outcome that
calls recorded inside it are attributed to. Held in context variables, so that each
thread and each asyncio task keeps its own (a task copies its parent's when created)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, replace


@dataclass(slots=True)
class Held:
    """A reservation a block runs under: what it records carries its id (and settles it
    when payback stores it); `used` counts those records."""

    id: str
    used: int = 0


@dataclass(frozen=True, slots=True)
class Attribution:
    customer: str | None = None
    feature: str | None = None
    user: str | None = None
    outcome: str | None = None  # the id of the outcome scope the code runs in
    reservation: Held | None = None  # the reservation scope the code runs in


# Attribution is frozen: the shared default can never be changed in place.
CURRENT: ContextVar[Attribution] = ContextVar("payback_attribution", default=Attribution())  # noqa: B039


@contextmanager
def attributed(**changes: str | Held | None) -> Iterator[Attribution]:
    """Within the block, records default to these fields (the others stay as they are)."""
    token = CURRENT.set(replace(CURRENT.get(), **changes))
    try:
        yield CURRENT.get()
    finally:
        CURRENT.reset(token)
