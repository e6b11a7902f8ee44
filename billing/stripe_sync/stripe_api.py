"""Stripe: the only module that imports `stripe`.

Every write carries an idempotency key derived from the local row it mirrors
(`payback:invoice_line:42`), so a retry after a crash between Stripe's answer and our
commit gets the object Stripe already made instead of a second one. The client does not
retry by itself: failures become StripeRetryable (5xx, 429, timeouts, connection
errors; with Stripe's Retry-After) or StripeRefused (any other 4xx), and the caller's
task decides (billing/stripe_sync/tasks.py).
"""

from __future__ import annotations

import functools
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, TypeVar

import stripe
from django.conf import settings

from common.metrics import STRIPE_ERRORS

T = TypeVar("T")


class StripeRetryable(Exception):
    def __init__(self, message: str, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class StripeRefused(Exception):
    """Stripe refused the request (a 4xx other than 429): retrying would not help."""


class InvalidSignature(Exception):
    """A webhook whose Stripe-Signature does not verify with any configured secret."""


class InvalidPayload(Exception):
    """A webhook body that is not a Stripe event: not UTF-8, or (signed) not a JSON object
    with an `id` and a `type`."""


def configured() -> bool:
    return bool(settings.STRIPE_API_KEY)


@functools.cache
def _client() -> stripe.StripeClient:
    base = {"api": settings.STRIPE_API_BASE} if settings.STRIPE_API_BASE else None
    return stripe.StripeClient(
        settings.STRIPE_API_KEY,
        base_addresses=base,  # type: ignore[arg-type]
        max_network_retries=0,
        http_client=stripe.RequestsClient(timeout=settings.STRIPE_TIMEOUT_SECONDS),
    )


def _retry_after(error: stripe.StripeError) -> int | None:
    """Stripe's Retry-After: whole seconds."""
    value = (error.headers or {}).get("Retry-After")
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


class RequestLimiter:
    """A token bucket: at most `rate` requests a second on average, `rate` at once at
    most. Per process: Stripe's limit is per account, so a deployment divides it among
    its worker processes (STRIPE_REQUESTS_PER_SECOND is each process's share)."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.tokens = rate
        self.updated = time.monotonic()
        self.lock = threading.Lock()

    def acquire(self) -> None:
        if self.rate <= 0:
            return
        with self.lock:
            now = time.monotonic()
            self.tokens = min(self.rate, self.tokens + (now - self.updated) * self.rate)
            self.updated = now
            wait = (1 - self.tokens) / self.rate if self.tokens < 1 else 0.0
            self.tokens -= 1
        if wait > 0:
            time.sleep(wait)


@functools.cache
def _limiter() -> RequestLimiter:
    return RequestLimiter(settings.STRIPE_REQUESTS_PER_SECOND)


def _call(request: Callable[[], T]) -> T:
    _limiter().acquire()
    try:
        return request()
    except stripe.APIConnectionError as error:  # timeouts and refused connections
        STRIPE_ERRORS.labels("retryable").inc()
        raise StripeRetryable(f"Stripe unreachable: {error.user_message or error}") from error
    except stripe.StripeError as error:
        should_retry = (error.headers or {}).get("Stripe-Should-Retry")
        status = error.http_status or 0
        if status == 429 or status >= 500 or should_retry == "true":
            STRIPE_ERRORS.labels("retryable").inc()
            raise StripeRetryable(f"Stripe answered {status}", _retry_after(error)) from error
        STRIPE_ERRORS.labels("refused").inc()
        raise StripeRefused(f"Stripe refused ({status}): {error.user_message or error}") from error


def _key(*parts: Any) -> dict[str, str]:
    return {"idempotency_key": ":".join(["payback", *map(str, parts)])}


def customer_create(*, customer_pk: int, external_id: str, name: str, email: str) -> str:
    params: dict[str, Any] = {"name": name or external_id, "metadata": {"external_id": external_id}}
    if email:
        params["email"] = email
    created = _call(
        lambda: _client().v1.customers.create(
            params=params,
            options=_key("customer", customer_pk),  # type: ignore[arg-type]
        )
    )
    return created.id


@dataclass(frozen=True, slots=True)
class StripeInvoice:
    """What payback keeps of a Stripe invoice."""

    id: str
    status: str  # Stripe's: draft, open, paid, void, uncollectible
    total: int  # minor units
    hosted_invoice_url: str
    invoice_pdf: str
    auto_advance: bool | None


def _invoice(found: stripe.Invoice) -> StripeInvoice:
    fields = found.to_dict()
    return StripeInvoice(
        id=fields["id"],
        status=fields.get("status") or "",
        total=fields.get("total") or 0,
        hosted_invoice_url=fields.get("hosted_invoice_url") or "",
        invoice_pdf=fields.get("invoice_pdf") or "",
        auto_advance=fields.get("auto_advance"),
    )


def invoice_create(
    *,
    invoice_pk: int,
    stripe_customer: str,
    collection_method: str,
    days_until_due: int,
    description: str,
) -> str:
    params: dict[str, Any] = {
        "customer": stripe_customer,
        "collection_method": collection_method,
        # Not before its lines are on it: Stripe would finalize it an hour after creation.
        # invoice_finalize turns it on.
        "auto_advance": False,
        "pending_invoice_items_behavior": "exclude",
        "description": description,
        "metadata": {"payback_invoice": str(invoice_pk)},
    }
    if collection_method == "send_invoice":
        params["days_until_due"] = days_until_due
    created = _call(
        lambda: _client().v1.invoices.create(
            params=params,
            options=_key("invoice", invoice_pk, "create"),  # type: ignore[arg-type]
        )
    )
    return created.id


def invoice_item_create(
    *,
    line_pk: int,
    stripe_customer: str,
    stripe_invoice: str,
    quantity: int,
    unit_amount_decimal: Decimal,
    currency: str,
    description: str,
    period_start: datetime,
    period_end: datetime,
) -> str:
    """One line: `quantity` × `unit_amount_decimal` (minor units, may be negative for a
    credit), over its service period. The caller makes their product exactly the line's
    amount, so that Stripe has nothing to round."""
    params = {
        "customer": stripe_customer,
        "invoice": stripe_invoice,
        "quantity": quantity,
        "unit_amount_decimal": f"{unit_amount_decimal:f}",
        "currency": currency.lower(),
        "description": description,
        "period": {"start": int(period_start.timestamp()), "end": int(period_end.timestamp())},
        "metadata": {"payback_invoice_line": str(line_pk)},
    }
    created = _call(
        lambda: _client().v1.invoice_items.create(
            params=params,
            options=_key("invoice_line", line_pk),  # type: ignore[arg-type]
        )
    )
    return created.id


def invoice_finalize(*, invoice_pk: int, stripe_invoice: str) -> StripeInvoice:
    """Finalize with `auto_advance` on, so that Stripe collects it: with `send_invoice` it
    e-mails the invoice, with `charge_automatically` it charges the default payment
    method, and retries and dunning follow the account's settings. (With auto_advance
    off, Stripe's documentation says, "you're responsible for transitioning the
    invoice": it is never sent nor charged.)"""
    finalized = _call(
        lambda: _client().v1.invoices.finalize_invoice(
            stripe_invoice,
            params={"auto_advance": True},
            options=_key("invoice", invoice_pk, "finalize"),  # type: ignore[arg-type]
        )
    )
    return _invoice(finalized)


def top_up_invoice_create(*, top_up_pk: int, stripe_customer: str, description: str) -> str:
    """A top-up's invoice, charged automatically once finalized (its item comes next)."""
    created = _call(
        lambda: _client().v1.invoices.create(
            params={
                "customer": stripe_customer,
                "collection_method": "charge_automatically",
                "auto_advance": False,
                "pending_invoice_items_behavior": "exclude",
                "description": description,
                "metadata": {"payback_top_up": str(top_up_pk)},
            },
            options=_key("top_up", top_up_pk, "create"),  # type: ignore[arg-type]
        )
    )
    return created.id


def top_up_item_create(
    *,
    top_up_pk: int,
    stripe_customer: str,
    stripe_invoice: str,
    amount: int,
    currency: str,
    description: str,
) -> str:
    """The credits bought, `amount` minor units, on the top-up's invoice."""
    created = _call(
        lambda: _client().v1.invoice_items.create(
            params={
                "customer": stripe_customer,
                "invoice": stripe_invoice,
                "amount": amount,
                "currency": currency.lower(),
                "description": description,
                "metadata": {"payback_top_up": str(top_up_pk)},
            },
            options=_key("top_up", top_up_pk, "item"),  # type: ignore[arg-type]
        )
    )
    return created.id


def top_up_invoice_finalize(*, top_up_pk: int, stripe_invoice: str) -> StripeInvoice:
    """Finalize with `auto_advance` on: Stripe charges the customer's payment method."""
    finalized = _call(
        lambda: _client().v1.invoices.finalize_invoice(
            stripe_invoice,
            params={"auto_advance": True},
            options=_key("top_up", top_up_pk, "finalize"),  # type: ignore[arg-type]
        )
    )
    return _invoice(finalized)


@dataclass(frozen=True, slots=True)
class StripeCreditNote:
    id: str
    pdf: str


# Where a credit note's amount goes, by payback's method (billing/invoicing/models.py
# CreditMethod): Stripe's field for it; an unpaid invoice's credit lowers what is due.
_CREDIT_FIELDS = {
    "refund": "refund_amount",
    "customer_balance": "credit_amount",
    "outside_stripe": "out_of_band_amount",
}


def credit_note_create(
    *,
    credit_note_pk: int,
    stripe_invoice: str,
    lines: list[tuple[str, int]],
    method: str,
    reason: str,
    memo: str,
) -> StripeCreditNote:
    """A credit note on a finalized Stripe invoice: one custom line per local line
    (description, amount in minor units: quantity 1 × that amount, nothing to round)."""
    params: dict[str, Any] = {
        "invoice": stripe_invoice,
        "lines": [
            {
                "type": "custom_line_item",
                "description": description,
                "quantity": 1,
                "unit_amount": amount,
            }
            for description, amount in lines
        ],
        "metadata": {"payback_credit_note": str(credit_note_pk)},
    }
    if method in _CREDIT_FIELDS:
        params[_CREDIT_FIELDS[method]] = sum(amount for _, amount in lines)
    if reason:
        params["reason"] = reason
    if memo:
        params["memo"] = memo
    created = _call(
        lambda: _client().v1.credit_notes.create(
            params=params,  # type: ignore[arg-type]
            options=_key("credit_note", credit_note_pk),  # type: ignore[arg-type]
        )
    )
    fields = created.to_dict()
    return StripeCreditNote(id=fields["id"], pdf=fields.get("pdf") or "")


def invoice_void(*, invoice_pk: int, stripe_invoice: str) -> str:
    voided = _call(
        lambda: _client().v1.invoices.void_invoice(
            stripe_invoice,
            options=_key("invoice", invoice_pk, "void"),  # type: ignore[arg-type]
        )
    )
    return voided.status or ""


def invoice_mark_uncollectible(*, invoice_pk: int, stripe_invoice: str) -> str:
    marked = _call(
        lambda: _client().v1.invoices.mark_uncollectible(
            stripe_invoice,
            options=_key("invoice", invoice_pk, "uncollectible"),  # type: ignore[arg-type]
        )
    )
    return marked.status or ""


def invoice_state(*, stripe_invoice: str) -> StripeInvoice:
    """Stripe's invoice as it is now (for the drift check)."""
    return _invoice(_call(lambda: _client().v1.invoices.retrieve(stripe_invoice)))


def webhook_event(*, payload: bytes, signature: str | None) -> dict[str, Any]:
    """The verified event of a webhook delivery. Raises InvalidSignature unless one of the
    configured secrets (two during a rotation) signed it within STRIPE_WEBHOOK_TOLERANCE
    of now, either way (the library checks only the past), and InvalidPayload for a body
    that is not a Stripe event."""
    try:
        text = payload.decode()
    except UnicodeDecodeError:
        raise InvalidPayload("the body is not UTF-8") from None
    tolerance = settings.STRIPE_WEBHOOK_TOLERANCE
    stamp = next((part[2:] for part in (signature or "").split(",") if part.startswith("t=")), "")
    if stamp.isdigit() and int(stamp) > time.time() + tolerance:
        raise InvalidSignature("the signature's timestamp is in the future")
    for secret in settings.STRIPE_WEBHOOK_SECRETS:
        try:
            stripe.WebhookSignature.verify_header(text, signature or "", secret, tolerance)
        except stripe.SignatureVerificationError:
            continue
        try:
            event = json.loads(text)
        except ValueError:
            raise InvalidPayload("signed, but not JSON") from None
        if not (
            isinstance(event, dict)
            and isinstance(event.get("id"), str)
            and isinstance(event.get("type"), str)
        ):
            raise InvalidPayload("signed, but not an event: no `id` or `type`")
        return event
    raise InvalidSignature("no configured secret verifies this Stripe-Signature")
