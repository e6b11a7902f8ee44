"""Invoicing over the API: a customer's usage with its invoice preview and margin, its
invoices, one invoice and its credit notes, and FX rates (list them, and add one with
the checks the admin and `manage.py load_fx_rates` use)."""

from typing import Any

from django.utils import timezone
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
)
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from api.pagination import page_of, page_parameters, paged_response
from api.parsers import ExactJSONParser
from api.queries import WINDOW_PARAMETERS, decimal_text
from billing.invoicing import selectors, services
from billing.invoicing.fx import USD, fx_rate_create
from billing.invoicing.models import FxRate
from billing.invoicing.serializers import (
    PERIOD_PARAMETER,
    CreditNoteInputSerializer,
    CreditNoteSerializer,
    CustomerUsageQuerySerializer,
    InvoiceSerializer,
    UsageWithPreviewSerializer,
)
from billing.money import from_minor_units, is_currency
from metering import selectors as metering_selectors
from metering.api import API_ERRORS, require_json
from metering.serializers import (
    AwareDateTimeField,
    ErrorSerializer,
    StrictInputSerializer,
    UsageTotalsSerializer,
)
from outcomes import selectors as outcome_selectors


def _totals(totals: metering_selectors.UsageTotals) -> dict[str, Any]:
    return UsageTotalsSerializer(totals).data


def _preview_body(preview: selectors.InvoicePreview | None) -> dict[str, Any]:
    if preview is None:
        return {"invoice_preview": None, "invoice_id": None, "margin": None}
    if preview.period is None:
        invoice = preview.invoice
        return {"invoice_preview": None, "invoice_id": invoice and invoice.pk, "margin": None}
    period, margin = preview.period, preview.margin
    assert margin is not None
    invoice = period.invoice
    sources = {change.source.pk: change.source for change in period.late}
    return {
        "invoice_preview": {
            "plan": period.terms.code,
            "plan_version": period.terms.version,
            "period_start": preview.start,
            "period_end": preview.end,
            "currency": invoice.currency,
            "lines": [
                {
                    "kind": line.kind,
                    "description": line.description,
                    "quantity": decimal_text(line.quantity),
                    "unit_price": decimal_text(line.unit_price),
                    "amount": line.amount,
                    "period_start": sources[line.source_invoice_id].period_start
                    if line.source_invoice_id
                    else preview.start,
                    "period_end": sources[line.source_invoice_id].period_end
                    if line.source_invoice_id
                    else preview.end,
                }
                for line in invoice.lines
            ],
            "total": invoice.total,
            "total_decimal": f"{from_minor_units(invoice.total, invoice.currency):f}",
            "missing_fx_rates": [str(rate) for rate in sorted(period.missing_rates)],
        },
        "invoice_id": None,
        "margin": {
            "currency": margin.currency,
            "revenue": decimal_text(margin.revenue),
            "inference_cost": decimal_text(margin.known_cost),
            "cost_status": margin.cost_status.value,
            "comparable": margin.comparable,
            "margin": decimal_text(margin.margin),
            "margin_percent": decimal_text(margin.margin_percent),
            "unpriced_calls": margin.unpriced_calls,
        },
    }


class CustomerUsageApi(APIView):
    @extend_schema(
        operation_id="customers_usage",
        summary="Usage, cost and outcomes over a window (default: the customer's current "
        "billing period), with the invoice preview and margin of the billing period it "
        "starts in",
        parameters=[*WINDOW_PARAMETERS, PERIOD_PARAMETER],
        responses={200: UsageWithPreviewSerializer, **API_ERRORS, 404: ErrorSerializer},
    )
    def get(self, request: Request, external_id: str) -> Response:
        query = CustomerUsageQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        customer = metering_selectors.customer_get(external_id=external_id)
        start, end = query.window(customer=customer, now=timezone.now())
        usage = metering_selectors.customer_usage(customer=customer, start=start, end=end)
        outcomes = outcome_selectors.outcome_type_summaries(customer=customer, start=start, end=end)
        preview = selectors.invoice_preview(customer=customer, moment=start)
        return Response(
            {
                "customer": customer.external_id,
                "start": start,
                "end": end,
                "currency": "USD",
                "totals": _totals(usage.totals),
                "by_model": [
                    {"provider": provider, "model": model, **_totals(totals)}
                    for provider, model, totals in usage.by_model
                ],
                "by_feature": [
                    {"feature": feature or None, **_totals(totals)}
                    for feature, totals in usage.by_feature
                ],
                "outcomes": [
                    {
                        "type": summary.type,
                        "succeeded": summary.succeeded,
                        "failed": summary.failed,
                        "pending": summary.pending,
                        "reversed": summary.reversed,
                        "calls": summary.calls,
                        "cost": decimal_text(summary.cost),
                        "cost_per_success": decimal_text(summary.cost_per_success),
                        "unpriced_calls": summary.unpriced_calls,
                    }
                    for summary in outcomes
                ],
                "premium_active_seats": usage.premium_users,
                **_preview_body(preview),
            }
        )


class InvoiceDetailApi(APIView):
    @extend_schema(
        operation_id="invoices_retrieve",
        summary="An invoice with its lines, status and Stripe links",
        responses={200: InvoiceSerializer, 401: API_ERRORS[401], 404: ErrorSerializer},
    )
    def get(self, request: Request, invoice_id: int) -> Response:
        return Response(InvoiceSerializer(selectors.invoice_get(invoice_id=invoice_id)).data)


class InvoiceCreditNotesApi(APIView):
    parser_classes = [ExactJSONParser]  # amounts sent as numbers are read exactly

    @extend_schema(
        operation_id="invoices_credit_notes",
        summary="The invoice's credit notes, in their order",
        responses={
            200: CreditNoteSerializer(many=True),
            401: API_ERRORS[401],
            404: ErrorSerializer,
            429: API_ERRORS[429],
        },
    )
    def get(self, request: Request, invoice_id: int) -> Response:
        invoice = selectors.invoice_get(invoice_id=invoice_id)
        notes = selectors.invoice_credit_notes(invoice=invoice)
        return Response(CreditNoteSerializer(notes, many=True).data)

    @extend_schema(
        operation_id="invoices_credit_notes_create",
        summary="Give money back on a finalized or paid invoice: a credit note, with lines",
        description=(
            "Each line gives back part or all of an invoice line (by its position), or an "
            "amount of its own with a description. An unpaid invoice's note lowers what is "
            "due; a paid one's is refunded, put on the customer's Stripe balance, or "
            "credited outside Stripe (`method`). The notes of an invoice never give back "
            "more than it billed, nor a line more than its amount (409). Mirrored to "
            "Stripe's credit notes when the invoice is there. The same `id` again answers "
            "200 with the note; other terms under it are refused (409)."
        ),
        request=CreditNoteInputSerializer,
        responses={
            200: CreditNoteSerializer,
            201: CreditNoteSerializer,
            **API_ERRORS,
            404: ErrorSerializer,
            409: OpenApiResponse(
                ErrorSerializer,
                description="The invoice cannot be credited so (its status, what is left "
                "to credit), or the id has other terms.",
            ),
            415: OpenApiResponse(ErrorSerializer, description="Not JSON."),
        },
    )
    def post(self, request: Request, invoice_id: int) -> Response:
        require_json(request)
        invoice = selectors.invoice_get(invoice_id=invoice_id)
        sent = CreditNoteInputSerializer(data=request.data)
        sent.is_valid(raise_exception=True)
        fields = sent.validated_data
        note, created = services.credit_note_issue(
            invoice_id=invoice.pk,
            request=services.CreditNoteRequest(
                external_id=fields["id"],
                method=fields.get("method", ""),
                reason=fields.get("reason", ""),
                memo=fields.get("memo", ""),
                lines=tuple(
                    services.CreditLineRequest(
                        amount=line["amount"],
                        invoice_line=line.get("invoice_line"),
                        description=line.get("description", ""),
                    )
                    for line in fields["lines"]
                ),
            ),
            by=f"api: {request.user}",
        )
        [note] = [n for n in selectors.invoice_credit_notes(invoice=invoice) if n.pk == note.pk]
        return Response(
            CreditNoteSerializer(note).data,
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )


class CustomerInvoicesApi(APIView):
    @extend_schema(
        operation_id="customers_invoices",
        summary="The customer's invoices, newest first, with their lines and status",
        parameters=page_parameters(100),
        responses={200: InvoiceSerializer(many=True), **API_ERRORS, 404: ErrorSerializer},
    )
    def get(self, request: Request, external_id: str) -> Response:
        customer = metering_selectors.customer_get(external_id=external_id)
        page = page_of(request, default=100, maximum=100)
        invoices, total = selectors.customer_invoices(
            customer=customer, limit=page.limit, offset=page.offset
        )
        return paged_response(
            request, InvoiceSerializer(invoices, many=True).data, page=page, total=total
        )


class FxRateInputSerializer(StrictInputSerializer):
    currency = serializers.CharField(help_text="ISO 4217, not USD.")
    effective_from = AwareDateTimeField(help_text="ISO 8601 with offset.")
    usd_per_unit = serializers.DecimalField(
        max_digits=24,
        decimal_places=12,
        help_text="What one unit is worth in USD from then on: a decimal string above 0.",
    )

    def validate_currency(self, value: str) -> str:
        code = value.strip().upper()
        if not is_currency(code) or code == USD:
            raise serializers.ValidationError("Must be an ISO 4217 code other than USD.")
        return code

    def validate_usd_per_unit(self, value: Any) -> Any:
        if value <= 0:
            raise serializers.ValidationError("Must be above 0.")
        return value


class FxRateSerializer(serializers.Serializer):
    currency = serializers.CharField()
    effective_from = serializers.DateTimeField()
    usd_per_unit = serializers.CharField(help_text="Exact decimal.")
    created_at = serializers.DateTimeField()


def _body(rate: FxRate) -> dict[str, Any]:
    return {
        "currency": rate.currency,
        "effective_from": rate.effective_from,
        "usd_per_unit": decimal_text(rate.usd_per_unit),
        "created_at": rate.created_at,
    }


class FxRatesApi(APIView):
    parser_classes = [ExactJSONParser]  # a rate sent as a number is read exactly

    @extend_schema(
        operation_id="fx_rates_list",
        summary="FX rates, by currency, newest first",
        parameters=[
            OpenApiParameter("currency", str, description="Only this currency."),
            *page_parameters(1000),
        ],
        responses={200: FxRateSerializer(many=True), **API_ERRORS},
    )
    def get(self, request: Request) -> Response:
        page = page_of(request, default=1000, maximum=1000)
        rates = FxRate.objects.order_by("currency", "-effective_from")
        if "currency" in request.query_params:
            rates = rates.filter(currency=request.query_params["currency"].upper())
        return paged_response(
            request,
            [_body(rate) for rate in rates[page.offset : page.offset + page.limit]],
            page=page,
            total=rates.count(),
        )

    @extend_schema(
        operation_id="fx_rates_create",
        summary="Add an FX rate: what one unit of a currency is worth in USD from a moment on",
        description=(
            "Margins convert with the rate valid at a period's start; outcome values in "
            "another currency than their plan's with the rate valid when they succeeded (a "
            "close waits for a missing one). The same rate again is answered 200; another "
            "rate for the same currency and moment is refused (409)."
        ),
        request=FxRateInputSerializer,
        responses={
            200: FxRateSerializer,
            201: FxRateSerializer,
            **API_ERRORS,
            409: OpenApiResponse(ErrorSerializer, description="Another rate for that moment."),
            415: OpenApiResponse(ErrorSerializer, description="Not JSON."),
        },
    )
    def post(self, request: Request) -> Response:
        require_json(request)
        sent = FxRateInputSerializer(data=request.data)
        sent.is_valid(raise_exception=True)
        rate, created = fx_rate_create(**sent.validated_data)
        return Response(
            _body(rate), status=status.HTTP_201_CREATED if created else status.HTTP_200_OK
        )
