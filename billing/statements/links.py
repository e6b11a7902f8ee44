"""Signed, expiring links to what a customer may read without a login: an invoice's
hosted statement, and the customer's portal. No database row.

A link carries what it opens (the invoice or customer id) and the time it was made,
signed with SECRET_KEY (Django's TimestampSigner, a salt per kind of link, so that a
statement's link never opens a portal): whoever has it may read that, until its time is
up (STATEMENT_LINK_DAYS for a statement; the ttl it was made with for a portal, at most
a week); a link changed in any way is refused.
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.core import signing
from django.urls import reverse

_SALT = "payback.statements.link"


class LinkRefused(Exception):
    """A link that is not one of ours, or is past its time."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.expired = reason == "expired"


def statement_token(invoice_id: int) -> str:
    return signing.TimestampSigner(salt=_SALT).sign(str(invoice_id))


def statement_path(invoice_id: int) -> str:
    return reverse("statement-page", kwargs={"token": statement_token(invoice_id)})


def statement_url(invoice_id: int) -> str | None:
    """The link for customers (PUBLIC_URL + path); None without a PUBLIC_URL."""
    if not settings.PUBLIC_URL:
        return None
    return f"{settings.PUBLIC_URL}{statement_path(invoice_id)}"


def invoice_of_token(token: str) -> int:
    """The invoice a link is for; LinkRefused if its signature is wrong or it expired."""
    signer = signing.TimestampSigner(salt=_SALT)
    try:
        value = signer.unsign(token, max_age=timedelta(days=settings.STATEMENT_LINK_DAYS))
    except signing.SignatureExpired:
        raise LinkRefused("expired") from None
    except signing.BadSignature:
        raise LinkRefused("bad signature") from None
    return int(value)


_PORTAL_SALT = "payback.portal.link"
PORTAL_MAX_TTL = timedelta(days=7)


def portal_token(customer_id: int, ttl: timedelta) -> str:
    """A link to the customer's portal, good for `ttl` (at most PORTAL_MAX_TTL)."""
    seconds = int(min(ttl, PORTAL_MAX_TTL).total_seconds())
    return signing.TimestampSigner(salt=_PORTAL_SALT).sign(f"{customer_id}.{seconds}")


def customer_of_portal_token(token: str) -> int:
    """The customer a portal link is for; LinkRefused if changed or past its time."""
    signer = signing.TimestampSigner(salt=_PORTAL_SALT)
    try:
        value = signer.unsign(token)
        customer_id, seconds = (int(part) for part in value.split("."))
        signer.unsign(token, max_age=timedelta(seconds=seconds))
    except signing.SignatureExpired:
        raise LinkRefused("expired") from None
    except (signing.BadSignature, ValueError):
        raise LinkRefused("bad signature") from None
    return customer_id
