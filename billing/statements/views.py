"""The hosted statement: an invoice's statement as a page (and its CSV) behind a signed,
expiring link, for the customer who reads it from Stripe's e-mail or hosted invoice. No
login; read-only; one invoice per link."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from babel import Locale, UnknownLocaleError
from babel.numbers import format_currency, format_decimal
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET

from billing.credits.selectors import ledger_with_balances
from billing.invoicing import selectors as invoicing_selectors
from billing.money import from_minor_units
from billing.statements import selectors
from billing.statements.api import csv_response, pdf_response
from billing.statements.links import (
    LinkRefused,
    customer_of_portal_token,
    invoice_of_token,
    statement_path,
)
from metering import selectors as metering_selectors

PAGE_SIZE = 500  # outcomes on one page of the hosted statement


def _locale(request: HttpRequest) -> Locale:
    """The reader's locale for numbers, dates and money: their browser's first choice."""
    for part in request.headers.get("Accept-Language", "").split(","):
        tag = part.split(";")[0].strip().replace("-", "_")
        if not tag or tag == "*":
            continue
        try:
            return Locale.parse(tag)
        except (ValueError, UnknownLocaleError):
            continue
    return Locale.parse("en_US")


def _refused(request: HttpRequest, refusal: LinkRefused) -> HttpResponse:
    return render(
        request,
        "statements/refused.html",
        {"expired": refusal.expired},
        status=410 if refusal.expired else 403,
    )


@require_GET
def statement_page(request: HttpRequest, token: str) -> HttpResponse:
    try:
        invoice_id = invoice_of_token(token)
    except LinkRefused as refusal:
        return _refused(request, refusal)
    invoice = invoicing_selectors.invoice_get(invoice_id=invoice_id)
    statement = selectors.statement_of(invoice)
    total = sum(t.outcomes for t in statement.types)
    try:
        page = max(1, int(request.GET.get("page", "1")))
    except ValueError:
        page = 1
    pages = max(1, -(-total // PAGE_SIZE))
    page = min(page, pages)
    locale = _locale(request)
    currency = invoice.currency

    def money(minor: int) -> str:
        return format_currency(from_minor_units(minor, currency), currency, locale=locale)

    def exact(amount: Decimal | None) -> str:
        return "" if amount is None else format_decimal(amount, locale=locale)

    outcomes = [
        {
            "id": o.id,
            "type": o.type,
            "succeeded_at": o.succeeded_at,
            "value": exact(o.value),
            "value_currency": o.value_currency,
            "fee": exact(o.fee),
            "allowance": o.allowance,
            "line": o.line,
            "block": o.block,
            "reversed": o.status_now == "reversed",
            "dispute": o.dispute,
        }
        for o in selectors.statement_outcomes(
            statement, offset=(page - 1) * PAGE_SIZE, limit=PAGE_SIZE, chunk=PAGE_SIZE
        )
    ]
    context: dict[str, Any] = {
        "invoice": invoice,
        "customer": invoice.customer.external_id,
        "total": money(invoice.total),
        "lines": [
            {
                "position": line.position,
                "description": line.description,
                "quantity": exact(line.quantity),
                "amount": money(line.amount),
                "late": line.source_invoice_id is not None,
                "period": line.source_invoice or invoice,
            }
            for line in statement.lines
        ],
        "types": [
            {
                "type": t.type,
                "outcomes": t.outcomes,
                "included": t.included,
                "amount": money(t.amount),
            }
            for t in statement.types
        ],
        "seats": statement.seats,
        "credit_notes": [
            {
                "number": note.number,
                "created_at": note.created_at,
                "memo": note.memo,
                "total": money(note.total),
                "lines": [(line.description, money(line.amount)) for line in note.lines.all()],
            }
            for note in statement.credit_notes
        ],
        "outcomes": outcomes,
        "outcomes_total": total,
        "page": page,
        "pages": pages,
        "token": token,
        "locale": locale,
    }
    return render(request, "statements/statement.html", context)


@require_GET
def statement_page_csv(request: HttpRequest, token: str) -> HttpResponse:
    try:
        invoice_id = invoice_of_token(token)
    except LinkRefused as refusal:
        return _refused(request, refusal)
    return csv_response(
        selectors.statement_of(invoicing_selectors.invoice_get(invoice_id=invoice_id))
    )


@require_GET
def statement_page_pdf(request: HttpRequest, token: str) -> HttpResponse:
    try:
        invoice_id = invoice_of_token(token)
    except LinkRefused as refusal:
        return _refused(request, refusal)
    statement = selectors.statement_of(invoicing_selectors.invoice_get(invoice_id=invoice_id))
    return pdf_response(statement)


@require_GET
def portal_page(request: HttpRequest, token: str) -> HttpResponse:
    """The customer's portal: the running period so far (its preview), credits and their
    ledger, invoices with their statements and Stripe's pages. Read-only."""
    try:
        customer_id = customer_of_portal_token(token)
    except LinkRefused as refusal:
        return _refused(request, refusal)
    customer = metering_selectors.customer_by_id(customer_id=customer_id)
    locale = _locale(request)
    now = timezone.now()
    preview = invoicing_selectors.invoice_preview(customer=customer, moment=now)
    period = preview.period if preview is not None else None

    def minor(amount: int, currency: str) -> str:
        return format_currency(from_minor_units(amount, currency), currency, locale=locale)

    def money(amount: Decimal, currency: str) -> str:
        return format_currency(amount, currency, locale=locale)

    running: dict[str, Any] | None = None
    if preview is not None and period is not None:
        currency = period.invoice.currency
        quantities = period.quantities
        running = {
            "start": preview.start,
            "end": preview.end,
            "lines": [
                {"description": line.description, "amount": minor(line.amount, currency)}
                for line in period.invoice.lines
            ],
            "total": minor(period.invoice.total, currency),
            "outcomes": sorted(
                (name, q.succeeded)
                for name, q in (quantities.outcomes if quantities else {}).items()
            ),
            "seats": quantities.seats if quantities else 0,
        }
    ledger = ledger_with_balances(customer_id=customer.pk)
    invoices, _ = invoicing_selectors.customer_invoices(customer=customer, limit=24, offset=0)
    context = {
        "customer": customer,
        "locale": locale,
        "running": running,
        "credits": [
            {
                "currency": currency,
                "balance": money(lines[-1].balance, currency),
                "entries": [
                    {
                        "at": line.entry.at,
                        "kind": line.entry.kind,
                        "amount": money(line.entry.amount, currency),
                        "balance": money(line.balance, currency),
                    }
                    for line in reversed(lines[-50:])
                ],
            }
            for currency, lines in sorted(ledger.items())
        ],
        "invoices": [
            {
                "invoice": invoice,
                "total": minor(invoice.total, invoice.currency),
                "statement": statement_path(invoice.pk),
            }
            for invoice in invoices
        ],
    }
    return render(request, "statements/portal.html", context)
