"""Signed, expiring links to an invoice's hosted statement: no login, no database row.

A link carries the invoice id and the time it was made, signed with SECRET_KEY (Django's
TimestampSigner, a salt of its own): whoever has it may read that invoice's statement,
until STATEMENT_LINK_DAYS after it was made; a link changed in any way is refused.
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
