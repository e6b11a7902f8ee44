"""The records the SDK sends: one usage event per LLM call, outcome records and reversals,
as the HTTP API takes them (docs/api.md of the payback repository). Built in the
caller's thread, cheaply: only the fields given, a client-side id and a timestamp."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal, NamedTuple

from payback_client._context import CURRENT, Attribution
from payback_client._ids import uuid7

_EMPTY = CURRENT.get()  # outside every scope: nothing to inherit
assert _EMPTY == Attribution()

Kind = Literal["event", "outcome", "reverse", "settle", "release"]
Money = Decimal | str | int


class Record(NamedTuple):  # a tuple: made for every call, and cheaper than a dataclass
    kind: Kind
    id: str
    body: dict[str, Any]  # as sent; a reversal has no body
    seq: int | None = None  # its row in the spool, once it is there (_spool.py)


def _moment(timestamp: datetime | None) -> str:
    """When it happened, with its offset: now when not given (taken when recorded, not
    when sent, which may be much later)."""
    if timestamp is None:
        return datetime.now(UTC).isoformat()
    if timestamp.tzinfo is None:
        raise ValueError("timestamp needs a timezone (an aware datetime)")
    return timestamp.isoformat()


def money(name: str, value: Money | None) -> str | None:
    if value is None:
        return None
    if isinstance(value, float):  # bool is an int, and money is never a float
        raise TypeError(f"{name} is money: pass a Decimal, a string or an int, not a float")
    return str(value)


_INHERITED = ("customer", "feature", "user", "outcome")


def event(fields: dict[str, Any]) -> Record:
    """A usage event from record_call's arguments (`fields`, None for not given; taken
    over, not copied); customer, feature, user and outcome default to the scope's."""
    body = {name: value for name, value in fields.items() if value is not None}
    if "id" not in body:
        body["id"] = uuid7()
    body["timestamp"] = _moment(body.get("timestamp"))
    scope = CURRENT.get()
    if scope is not _EMPTY:
        for name in _INHERITED:
            if name not in body and (inherited := getattr(scope, name)) is not None:
                body[name] = inherited
        if scope.reservation is not None:
            _carry_reservation(body)
    if "customer" not in body:
        raise ValueError("a call needs a customer: pass customer= or record inside a scope")
    if "cost" in body:
        body["cost"] = money("cost", body["cost"])
    return Record("event", body["id"], body)


def outcome(
    *,
    id: str | None,
    type: str | None,
    customer: str | None,
    status: str | None,
    value: Money | None,
    currency: str | None,
    properties: dict[str, Any] | None,
    reservation: str | None,
    timestamp: datetime | None,
) -> Record:
    """An outcome record: a new outcome, or a status move of a known one (id and status)."""
    body: dict[str, Any] = {"id": id or uuid7(), "timestamp": _moment(timestamp)}
    if reservation is None and type is not None:  # a new outcome, in a reservation scope
        _carry_reservation(body)
    for name, given in (
        ("type", type),
        ("customer", customer),
        ("status", status),
        ("value", money("value", value)),
        ("currency", currency),
        ("properties", properties),
        ("reservation", reservation),
    ):
        if given is not None:
            body[name] = given
    return Record("outcome", body["id"], body)


def _carry_reservation(body: dict[str, Any]) -> None:
    """A record made in a reservation scope names the reservation (when it names none),
    and the scope counts it: payback settles the reservation when it stores it."""
    held = CURRENT.get().reservation
    if held is not None and "reservation" not in body:
        body["reservation"] = held.id
        held.used += 1


def reversal(id: str) -> Record:
    return Record("reverse", id, {})


def settlement(reservation: str, amount: Money | None) -> Record:
    """Settle a reservation (with what the work bills), or release it (no amount)."""
    if amount is None:
        return Record("release", reservation, {})
    return Record("settle", reservation, {"amount": money("amount", amount)})
