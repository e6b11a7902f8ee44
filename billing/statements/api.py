"""Statements over the API: an invoice's statement as JSON (its outcomes a page at a time)
or as one streamed CSV."""

import csv
from collections.abc import Iterator
from dataclasses import asdict
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.http import HttpResponse, StreamingHttpResponse
from django.urls import reverse
from django.utils import timezone
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from api.pagination import page_of, page_parameters, paged_response
from api.parsers import ExactJSONParser
from api.queries import decimal_text
from billing.invoicing import selectors as invoicing_selectors
from billing.invoicing.serializers import CreditNoteSerializer
from billing.money import from_minor_units
from billing.statements import selectors
from billing.statements.links import PORTAL_MAX_TTL, portal_token
from billing.statements.pdf import statement_pdf
from billing.statements.serializers import StatementSerializer
from metering import selectors as metering_selectors
from metering.api import API_ERRORS, require_json
from metering.serializers import ErrorSerializer, StrictInputSerializer

MAX_PAGE = 10_000  # outcomes in one answer; the CSV has them all
NOT_FOUND = {404: OpenApiResponse(ErrorSerializer, description="No such invoice.")}


def _line(line: Any) -> dict[str, Any]:
    source = line.source_invoice or line.invoice
    return {
        "position": line.position,
        "kind": line.kind,
        "description": line.description,
        "quantity": decimal_text(line.quantity),
        "unit_price": decimal_text(line.unit_price),
        "amount": line.amount,
        "outcome_type": line.outcome_type,
        "feature": line.feature,
        "late": line.source_invoice_id is not None,
        "period_start": source.period_start,
        "period_end": source.period_end,
    }


def _outcome(outcome: selectors.BilledOutcome) -> dict[str, Any]:
    return {
        "id": outcome.id,
        "type": outcome.type,
        "succeeded_at": outcome.succeeded_at,
        "value": decimal_text(outcome.value),
        "value_currency": outcome.value_currency,
        "fee": decimal_text(outcome.fee),
        "allowance": outcome.allowance,
        "line": outcome.line,
        "block": outcome.block,
        "fx_rate_missing": outcome.fx_rate_missing,
        "status_now": outcome.status_now,
        "dispute": outcome.dispute,
    }


class StatementApi(APIView):
    @extend_schema(
        operation_id="invoices_statement",
        summary="The invoice's statement: every outcome it billed with its fee, its seats, "
        "late usage and credits with their periods, credits applied",
        parameters=page_parameters(MAX_PAGE),
        responses={200: StatementSerializer, **API_ERRORS, **NOT_FOUND},
    )
    def get(self, request: Request, invoice_id: int) -> Response:
        page = page_of(request, default=1000, maximum=MAX_PAGE)
        invoice = invoicing_selectors.invoice_get(invoice_id=invoice_id)
        statement = selectors.statement_of(invoice)
        total = sum(t.outcomes for t in statement.types)
        outcomes = selectors.statement_outcomes(
            statement, offset=page.offset, limit=page.limit, chunk=page.limit
        )
        invoice_body = {
            "id": invoice.pk,
            "customer": invoice.customer.external_id,
            "period_start": invoice.period_start,
            "period_end": invoice.period_end,
            "status": invoice.status,
            "currency": invoice.currency,
            "total": invoice.total,
            "plan": invoice.plan_version.plan.code,
            "plan_version": invoice.plan_version.version,
            "stripe_invoice_id": invoice.stripe_invoice_id,
            "hosted_invoice_url": invoice.hosted_invoice_url,
            "invoice_pdf": invoice.invoice_pdf,
            "replaced_by": invoice.replaced_by_id,
        }
        body = {
            "invoice": invoice_body,
            "lines": [_line(line) for line in statement.lines],
            "outcome_types": [asdict(t) for t in statement.types],
            "seats": [asdict(seat) for seat in statement.seats],
            "credit_notes": CreditNoteSerializer(statement.credit_notes, many=True).data,
            "credited": statement.credited,
            "outcomes": [_outcome(o) for o in outcomes],
            "outcomes_total": total,
            "lines_total": statement.lines_total,
        }
        response = paged_response(request, [], page=page, total=total)
        response.data = body
        return response


class _Echo:
    """What csv.writer writes to: each row handed back, for the stream."""

    def write(self, value: str) -> str:
        return value


CSV_COLUMNS = (
    "section", "line", "kind", "description", "period_start", "period_end", "quantity",
    "unit_price", "amount", "outcome_id", "outcome_type", "succeeded_at", "value",
    "value_currency", "fee", "allowance", "block", "status_now", "dispute", "user",
    "active_days",
)  # fmt: skip


def _row(**fields: Any) -> list[Any]:
    return [fields.get(column, "") for column in CSV_COLUMNS]


def statement_rows(statement: selectors.Statement) -> Iterator[list[Any]]:
    """The statement as CSV rows: its lines (amounts as decimals), its seats, then every
    billed outcome, read a chunk at a time, and the total."""
    currency = statement.invoice.currency
    yield list(CSV_COLUMNS)
    for line in statement.lines:
        data = _line(line)
        yield _row(
            section="line",
            line=line.position,
            kind=line.kind,
            description=line.description,
            period_start=data["period_start"].isoformat(),
            period_end=data["period_end"].isoformat(),
            quantity=data["quantity"],
            unit_price=data["unit_price"],
            amount=decimal_text(from_minor_units(line.amount, currency)),
            outcome_type=line.outcome_type,
        )
    for seat in statement.seats:
        yield _row(section="seat", user=seat.user, active_days=seat.active_days)
    for outcome in selectors.statement_outcomes(statement):
        yield _row(
            section="outcome",
            line=outcome.line,
            outcome_id=outcome.id,
            outcome_type=outcome.type,
            succeeded_at=outcome.succeeded_at.isoformat(),
            value=decimal_text(outcome.value) or "",
            value_currency=outcome.value_currency,
            fee=decimal_text(outcome.fee),
            allowance=outcome.allowance,
            block=outcome.block or "",
            status_now=outcome.status_now,
            dispute=outcome.dispute,
        )
    total = from_minor_units(statement.lines_total, currency)
    yield _row(section="total", amount=decimal_text(total))


class StatementCsvApi(APIView):
    @extend_schema(
        operation_id="invoices_statement_csv",
        summary="The invoice's statement as CSV, streamed: lines, seats, every billed "
        "outcome, the total",
        responses={
            (200, "text/csv"): OpenApiResponse(description="The statement's rows."),
            401: API_ERRORS[401],
            429: API_ERRORS[429],
            **NOT_FOUND,
        },
    )
    def get(self, request: Request, invoice_id: int) -> StreamingHttpResponse:
        invoice = invoicing_selectors.invoice_get(invoice_id=invoice_id)
        return csv_response(selectors.statement_of(invoice))


def csv_response(statement: selectors.Statement) -> StreamingHttpResponse:
    """The statement's CSV, streamed (the API's and the hosted page's)."""
    writer = csv.writer(_Echo())
    response = StreamingHttpResponse(
        (writer.writerow(row) for row in statement_rows(statement)),
        content_type="text/csv; charset=utf-8",
    )
    response["Content-Disposition"] = f'attachment; filename="statement-{statement.invoice.pk}.csv"'
    return response


class StatementPdfApi(APIView):
    @extend_schema(
        operation_id="invoices_statement_pdf",
        summary="The invoice's statement as PDF: the hosted page's sections, every billed "
        "outcome included",
        responses={
            (200, "application/pdf"): OpenApiResponse(description="The statement."),
            401: API_ERRORS[401],
            429: API_ERRORS[429],
            **NOT_FOUND,
        },
    )
    def get(self, request: Request, invoice_id: int) -> HttpResponse:
        invoice = invoicing_selectors.invoice_get(invoice_id=invoice_id)
        return pdf_response(selectors.statement_of(invoice))


def pdf_response(statement: selectors.Statement) -> HttpResponse:
    response = HttpResponse(statement_pdf(statement), content_type="application/pdf")
    response["Content-Disposition"] = f'attachment; filename="statement-{statement.invoice.pk}.pdf"'
    return response


class PortalLinkInputSerializer(StrictInputSerializer):
    ttl_seconds = serializers.IntegerField(
        min_value=60,
        max_value=int(PORTAL_MAX_TTL.total_seconds()),
        default=3600,
        help_text="How long the link works (at most a week).",
    )


class PortalLinkSerializer(serializers.Serializer):
    path = serializers.CharField(help_text="The portal's path on payback's host.")
    url = serializers.CharField(
        allow_null=True, help_text="PAYBACK_PUBLIC_URL + path; null without PUBLIC_URL."
    )
    expires_at = serializers.DateTimeField()


class PortalLinksApi(APIView):
    parser_classes = [ExactJSONParser]

    @extend_schema(
        operation_id="customers_portal_links",
        summary="A signed, expiring link to the customer's portal (no login): its period so "
        "far, credits, invoices and statements",
        request=PortalLinkInputSerializer,
        responses={
            201: PortalLinkSerializer,
            **API_ERRORS,
            404: OpenApiResponse(ErrorSerializer, description="No such customer."),
            415: OpenApiResponse(ErrorSerializer, description="Not JSON."),
        },
    )
    def post(self, request: Request, external_id: str) -> Response:
        require_json(request)
        sent = PortalLinkInputSerializer(data=request.data)
        sent.is_valid(raise_exception=True)
        customer = metering_selectors.customer_get(external_id=external_id)
        ttl = timedelta(seconds=sent.validated_data["ttl_seconds"])
        path = reverse("portal-page", kwargs={"token": portal_token(customer.pk, ttl)})
        return Response(
            {
                "path": path,
                "url": f"{settings.PUBLIC_URL}{path}" if settings.PUBLIC_URL else None,
                "expires_at": timezone.now() + ttl,
            },
            status=201,
        )
