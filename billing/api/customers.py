"""Customers with their plan, usage with the invoice preview and margin, invoices,
plans, and reversing an outcome (within its plan's window)."""

from typing import Any

from django.utils import timezone
from drf_spectacular.utils import (
    OpenApiResponse,
    extend_schema,
)
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from billing import selectors, services
from billing.api.common import WINDOW_PARAMETERS, decimal_text
from billing.models import Plan
from billing.money import from_minor_units
from billing.serializers import (
    PERIOD_PARAMETER,
    CustomerUsageQuerySerializer,
    CustomerWithPlanInputSerializer,
    CustomerWithPlanOutputSerializer,
    InvoiceSerializer,
    UsageWithPreviewSerializer,
)
from config.errors import ApiError, ErrorDetail
from config.pagination import page_of, page_parameters, paged_response
from metering import selectors as metering_selectors
from metering.api import API_ERRORS, require_json
from metering.models import Customer
from metering.serializers import CustomerOutputSerializer, ErrorSerializer, UsageTotalsSerializer
from outcomes import selectors as outcome_selectors
from outcomes.serializers import OutcomeOutputSerializer
from outcomes.services import outcome_reverse


def _customer_body(customer: Customer) -> dict[str, Any]:
    subscription = selectors.subscription_of(customer=customer)
    if subscription is None:
        return CustomerOutputSerializer(customer).data | {
            "plan": None,
            "premium_seats": 0,
            "next_plan": None,
            "started_at": None,
            "billing_anchor_day": None,
            "timezone": None,
        }
    now = timezone.now()
    plan_id = selectors.plan_in_effect(subscription=subscription, moment=now)
    pending = selectors.plan_change_pending(subscription=subscription, now=now)
    return CustomerOutputSerializer(customer).data | {
        "plan": Plan.objects.get(pk=plan_id).code,
        "premium_seats": selectors.seats_at(subscription=subscription, moment=now),
        "next_plan": (
            {"plan": pending.plan.code, "from": pending.effective_from} if pending else None
        ),
        "started_at": subscription.started_at,
        "billing_anchor_day": subscription.billing_anchor_day,
        "timezone": subscription.timezone,
    }


class CustomerDetailApi(APIView):
    @extend_schema(
        operation_id="customers_retrieve",
        summary="The customer",
        responses={
            200: CustomerWithPlanOutputSerializer,
            401: API_ERRORS[401],
            404: ErrorSerializer,
        },
    )
    def get(self, request: Request, external_id: str) -> Response:
        customer = metering_selectors.customer_get(external_id=external_id)
        return Response(_customer_body(customer))

    @extend_schema(
        operation_id="customers_upsert",
        summary="Create or update a customer, its plan, premium seats and how its periods run",
        request=CustomerWithPlanInputSerializer,
        responses={
            200: CustomerWithPlanOutputSerializer,
            201: CustomerWithPlanOutputSerializer,
            **API_ERRORS,
            409: OpenApiResponse(
                ErrorSerializer,
                description="A change of how periods run (start, anchor day, time zone) "
                "once a period has been invoiced.",
            ),
            415: OpenApiResponse(ErrorSerializer, description="Not JSON."),
        },
    )
    def put(self, request: Request, external_id: str) -> Response:
        require_json(request)
        if len(external_id) > 200:
            raise ApiError(
                [
                    ErrorDetail(
                        field="external_id", code="out_of_range", message="At most 200 characters."
                    )
                ]
            )
        serializer = CustomerWithPlanInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        fields = dict(serializer.validated_data)
        customer, created = services.customer_save(
            external_id=external_id,
            plan_code=fields.pop("plan", None),
            premium_seats=fields.pop("premium_seats", None),
            periods={
                name: fields.pop(name)
                for name in ("started_at", "billing_anchor_day", "timezone")
                if name in fields
            },
            **fields,
        )
        return Response(
            _customer_body(customer),
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )


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


class OutcomeReverseApi(APIView):
    @extend_schema(
        operation_id="outcomes_reverse",
        summary="Reverse a succeeded outcome within its plan's reversal window",
        request=None,
        responses={
            200: OutcomeOutputSerializer,
            401: API_ERRORS[401],
            404: ErrorSerializer,
            409: ErrorSerializer,
        },
    )
    def post(self, request: Request, external_id: str) -> Response:
        outcome = outcome_selectors.outcome_get(external_id=external_id)
        window = selectors.reversal_window(customer=outcome.customer)
        reversed_outcome = outcome_reverse(
            external_id=external_id, window=window, now=timezone.now()
        )
        return Response(OutcomeOutputSerializer(reversed_outcome).data)


class InvoiceDetailApi(APIView):
    @extend_schema(
        operation_id="invoices_retrieve",
        summary="An invoice with its lines, status and Stripe links",
        responses={200: InvoiceSerializer, 401: API_ERRORS[401], 404: ErrorSerializer},
    )
    def get(self, request: Request, invoice_id: int) -> Response:
        return Response(InvoiceSerializer(selectors.invoice_get(invoice_id=invoice_id)).data)


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
