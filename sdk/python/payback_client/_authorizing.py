"""Asking payback before spending: `authorize` (answered at once, so sent by the caller,
not queued), and the reservation scope. Without I/O: the request, the answer, and when
to ask again; each client sends it with its own HTTP client."""

from __future__ import annotations

from contextvars import Token
from dataclasses import dataclass, field, replace
from decimal import Decimal
from types import TracebackType
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from payback_client._context import CURRENT, Attribution, Held
from payback_client._delivery import RETRIED_STATUSES, _errors, _retry_after
from payback_client._ids import uuid7
from payback_client._records import Money, money

if TYPE_CHECKING:
    from payback_client._recorder import Recorder


class PaybackError(Exception):
    """payback refused the request (`status`, and its `errors`: code, field, message)."""

    def __init__(self, status: int, errors: list[dict[str, Any]]) -> None:
        first = errors[0] if errors else {}
        super().__init__(f"HTTP {status}: {first.get('code', '')} {first.get('message', '')}")
        self.status, self.errors = status, errors


class PaybackUnavailable(PaybackError):
    """payback did not answer (after the client's attempts): whether to go on without it
    is the caller's decision."""


@dataclass(frozen=True, slots=True)
class Authorization:
    allowed: bool
    reservation: str | None  # its id (res_…) when allowed
    amount: Decimal  # what was asked, priced by payback
    exceeds: list[str]  # "credits", "budget", "cost_budget", "fair_use"
    available: dict[str, Any] = field(default_factory=dict)  # payback's parts, as sent


class Refused(Exception):
    """A reservation scope was refused: the block did not run."""

    def __init__(self, authorization: Authorization) -> None:
        super().__init__(f"not authorized: exceeds {', '.join(authorization.exceeds)}")
        self.authorization = authorization


def authorize_request(
    *,
    customer: str | None,
    amount: Money | None,
    outcome_type: str | None,
    quantity: int | None,
    user: str | None,
    ttl: int | None,
    id: str | None,
) -> tuple[str, dict[str, Any], str]:
    """The path and body of `POST /v1/customers/{id}/authorize`, and the customer; the
    id made here, so that asking again after a lost answer finds the same reservation."""
    scope = CURRENT.get()
    customer = customer or scope.customer
    if customer is None:
        raise ValueError("an authorization needs a customer: pass customer= or use a scope")
    if amount is None and not (outcome_type and quantity):
        raise ValueError("say an amount, or an outcome_type and a quantity")
    body: dict[str, Any] = {"id": id or uuid7()}
    for name, given in (
        ("amount", money("amount", amount)),
        ("outcome_type", outcome_type),
        ("quantity", quantity),
        ("user", user or scope.user),
        ("ttl_seconds", ttl),
    ):
        if given is not None:
            body[name] = given
    return f"/v1/customers/{quote(customer, safe='')}/authorize", body, customer


def answer_of(status: int, headers: Any, content: bytes) -> Authorization | float:
    """The authorization, or how many seconds to wait before asking again; raises
    PaybackError for a refusal of the request itself (an unknown customer, no plan)."""
    if status in RETRIED_STATUSES or status >= 500:
        return _retry_after(headers)
    if status != 200:
        raise PaybackError(status, _errors(content))
    import json

    answer = json.loads(content)
    reservation = answer.get("reservation") or {}
    return Authorization(
        allowed=bool(answer["allowed"]),
        reservation=reservation.get("id"),
        amount=Decimal(answer["amount"]),
        exceeds=list(answer.get("exceeds") or ()),
        available=answer.get("available") or {},
    )


class ReservationScope:
    """A block that spends: authorized on entry (Refused, and the block does not run,
    when payback says no), its records carry the reservation (payback settles it when it
    stores the first), and it is released on exit when nothing was recorded in it (the
    work did not happen) unless the block settled it itself."""

    def __init__(self, owner: Recorder, request: tuple[str, dict[str, Any], str]) -> None:
        self._owner = owner
        self._request = request
        self.customer = request[2]
        self.authorization: Authorization | None = None
        self._held: Held | None = None
        self._token: Token[Attribution] | None = None

    @property
    def id(self) -> str:
        assert self._held is not None, "entered first"
        return self._held.id

    def settle(self, amount: Money) -> None:
        """What the work bills, said by the block: the reservation stops holding."""
        assert self._held is not None, "entered first"
        self._held.used += 1
        self._owner.settle(self._held.id, amount)

    def _enter(self, authorization: Authorization) -> ReservationScope:
        self.authorization = authorization
        if not authorization.allowed or authorization.reservation is None:
            raise Refused(authorization)
        self._held = Held(authorization.reservation)
        scope = CURRENT.get()
        self._token = CURRENT.set(replace(scope, customer=self.customer, reservation=self._held))
        return self

    def _exit(self) -> None:
        if self._token is None or self._held is None:
            return
        CURRENT.reset(self._token)
        if not self._held.used:  # nothing recorded under it: the work did not happen
            self._owner.release(self._held.id)

    def __enter__(self) -> ReservationScope:
        return self._enter(self._owner.authorize_sent(self._request))  # type: ignore[attr-defined]

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:  # fmt: skip
        self._exit()

    async def __aenter__(self) -> ReservationScope:
        return self._enter(await self._owner.authorize_sent(self._request))  # type: ignore[attr-defined]

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:  # fmt: skip
        self._exit()
