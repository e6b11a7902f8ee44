"""HTTP views of the billing app: customers with their plan, usage with the invoice
preview and margin, plans, and reversing an outcome (within its plan's window)."""

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import msgspec
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    inline_serializer,
)
from rest_framework import serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from billing import selectors, services
from billing.integrations.stripe import InvalidSignature
from billing.models import Plan
from billing.money import from_minor_units
from billing.selectors.margins import GROUP_BYS, MarginFilters, MarginRow, margins_report
from billing.selectors.premium import PremiumBreakEven, premium_break_even
from billing.selectors.savings import Substitution, WhatIf, caching_levers, what_if
from billing.serializers import (
    CustomerWithPlanInputSerializer,
    CustomerWithPlanOutputSerializer,
    InvoiceSerializer,
    PlanDocumentSerializer,
    UsageWithPreviewSerializer,
)
from billing.services.webhooks import webhook_receive
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
        summary="Create or update a customer, its plan and premium seats",
        request=CustomerWithPlanInputSerializer,
        responses={
            200: CustomerWithPlanOutputSerializer,
            201: CustomerWithPlanOutputSerializer,
            **API_ERRORS,
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
            **fields,
        )
        return Response(
            _customer_body(customer),
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )


class UsageQuerySerializer(serializers.Serializer):
    from_ = serializers.DateTimeField(required=False, help_text="Inclusive; default: month start.")
    to = serializers.DateTimeField(required=False, help_text="Exclusive; default: next month.")

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        # `from` is a Python keyword: read it into `from_`, and name it `from` in errors.
        data = {"from_": data.get("from"), "to": data.get("to")}
        try:
            return super().to_internal_value({k: v for k, v in data.items() if v is not None})
        except serializers.ValidationError as exc:
            detail = exc.detail if isinstance(exc.detail, dict) else {}
            raise serializers.ValidationError(
                {("from" if key == "from_" else key): value for key, value in detail.items()}
            ) from exc

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        now = timezone.now()
        month_start = datetime(now.year, now.month, 1, tzinfo=UTC)
        next_month = datetime(now.year + now.month // 12, now.month % 12 + 1, 1, tzinfo=UTC)
        attrs.setdefault("from_", month_start)
        attrs.setdefault("to", next_month)
        if attrs["from_"] >= attrs["to"]:
            raise serializers.ValidationError({"to": "`to` must be after `from`."})
        return attrs


# The analytics endpoints' window, [from, to).
WINDOW_PARAMETERS = [
    OpenApiParameter("from", datetime, description="Inclusive, ISO 8601; default: month start."),
    OpenApiParameter("to", datetime, description="Exclusive, ISO 8601; default: next month."),
]


def _decimal(value: Decimal | None) -> str | None:
    return None if value is None else f"{value.normalize():f}"


def _totals(totals: metering_selectors.UsageTotals) -> dict[str, Any]:
    return UsageTotalsSerializer(totals).data


def _preview_body(preview: selectors.InvoicePreview | None) -> dict[str, Any]:
    if preview is None:
        return {"invoice_preview": None, "margin": None}
    invoice, margin = preview.invoice, preview.margin
    return {
        "invoice_preview": {
            "plan": preview.terms.code,
            "plan_version": preview.terms.version,
            "currency": invoice.currency,
            "lines": [
                {
                    "kind": line.kind,
                    "description": line.description,
                    "quantity": _decimal(line.quantity),
                    "unit_price": _decimal(line.unit_price),
                    "amount": line.amount,
                }
                for line in invoice.lines
            ],
            "total": invoice.total,
            "total_decimal": f"{from_minor_units(invoice.total, invoice.currency):f}",
        },
        "margin": {
            "currency": margin.currency,
            "revenue": _decimal(margin.revenue),
            "inference_cost": _decimal(margin.inference_cost),
            "comparable": margin.comparable,
            "margin": _decimal(margin.margin),
            "margin_percent": _decimal(margin.margin_percent),
            "unpriced_calls": margin.unpriced_calls,
        },
    }


class CustomerUsageApi(APIView):
    @extend_schema(
        operation_id="customers_usage",
        summary="Usage, cost, outcomes, the invoice preview and the margin over a window "
        "(default: this calendar month)",
        parameters=[
            *WINDOW_PARAMETERS,
        ],
        responses={200: UsageWithPreviewSerializer, **API_ERRORS, 404: ErrorSerializer},
    )
    def get(self, request: Request, external_id: str) -> Response:
        query = UsageQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        start, end = query.validated_data["from_"], query.validated_data["to"]
        customer = metering_selectors.customer_get(external_id=external_id)
        usage = metering_selectors.customer_usage(customer=customer, start=start, end=end)
        outcomes = outcome_selectors.outcome_type_summaries(customer=customer, start=start, end=end)
        active_seats = usage.premium_users
        preview = selectors.invoice_preview(
            usage=usage, active_seats=active_seats, as_of=timezone.now()
        )
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
                        "cost": _decimal(summary.cost),
                        "cost_per_success": _decimal(summary.cost_per_success),
                        "unpriced_calls": summary.unpriced_calls,
                    }
                    for summary in outcomes
                ],
                "premium_active_seats": active_seats,
                **_preview_body(preview),
            }
        )


class PlanListApi(APIView):
    @extend_schema(
        operation_id="plans_list",
        summary="Plans, each at its current version, with all its prices",
        parameters=page_parameters(100),
        responses={200: PlanDocumentSerializer(many=True), **API_ERRORS},
    )
    def get(self, request: Request) -> Response:
        page = page_of(request, default=100, maximum=100)
        plans = Plan.objects.order_by("code")
        documents = []
        for plan in plans[page.offset : page.offset + page.limit]:
            version = selectors.plan_version_current(plan_id=plan.pk)
            if version is not None:
                document = selectors.plan_document(version)
                # Every top-level field, null or empty when unset (the loader's documents
                # leave defaults out; the API's answer has one shape).
                documents.append(
                    {
                        "version": version.version,
                        **{
                            name: msgspec.to_builtins(getattr(document, name))
                            for name in document.__struct_fields__
                        },
                    }
                )
        return paged_response(request, documents, page=page, total=plans.count())


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


class StripeWebhookApi(APIView):
    """Stripe's webhooks: no API key, the Stripe-Signature is the authentication."""

    authentication_classes: list[Any] = []
    permission_classes = [AllowAny]
    parser_classes: list[Any] = []  # the raw body is what the signature covers

    @extend_schema(
        operation_id="webhooks_stripe",
        summary="Stripe events (signed with Stripe-Signature)",
        request={"application/json": OpenApiTypes.OBJECT},
        responses={
            200: inline_serializer(
                "WebhookReceived",
                {"received": serializers.BooleanField(), "duplicate": serializers.BooleanField()},
            ),
            400: ErrorSerializer,
        },
        auth=[],
    )
    def post(self, request: Request) -> Response:
        try:
            _, created = webhook_receive(
                body=request.body, signature=request.headers.get("Stripe-Signature")
            )
        except InvalidSignature as refused:
            raise ApiError(
                [
                    ErrorDetail(
                        field="Stripe-Signature", code="invalid_signature", message=str(refused)
                    )
                ]
            ) from refused
        return Response({"received": True, "duplicate": not created})


def _substitutions(values: list[str], parameter: str) -> list[Substitution]:
    """`provider:model=provider:model`, repeatable."""
    parsed = []
    for value in values:
        try:
            source, target = value.split("=", 1)
            provider, model = source.split(":", 1)
            to_provider, to_model = target.split(":", 1)
        except ValueError:
            raise ApiError(
                [
                    ErrorDetail(
                        field=parameter,
                        code="invalid",
                        message=f"`{value}`: write provider:model=provider:model.",
                    )
                ]
            ) from None
        if not all((provider, model, to_provider, to_model)):
            raise ApiError(
                [
                    ErrorDetail(
                        field=parameter, code="invalid", message=f"`{value}`: a part is empty."
                    )
                ]
            )
        parsed.append(Substitution(provider, model, to_provider, to_model))
    return parsed


def _what_if_body(result: WhatIf) -> dict[str, Any]:
    substitution = result.substitution
    return {
        "from": f"{substitution.provider}:{substitution.model}",
        "to": f"{substitution.to_provider}:{substitution.to_model}",
        "calls": result.calls,
        "cost_before": _decimal(result.cost_before),
        "cost_after": _decimal(result.cost_after),
        "saving": _decimal(result.saving),
    }


class SavingsQuerySerializer(UsageQuerySerializer):
    customer = serializers.CharField(required=False, help_text="One customer's external id.")
    max_input_tokens = serializers.IntegerField(required=False, min_value=0)
    feature = serializers.CharField(required=False)

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        values = super().to_internal_value(data)
        rest = serializers.Serializer.to_internal_value(
            self, {k: data[k] for k in ("customer", "max_input_tokens", "feature") if k in data}
        )
        return {**values, **rest}


class SavingsApi(APIView):
    @extend_schema(
        operation_id="analytics_savings",
        summary="What caching, routing and distillation save or would save over a window",
        parameters=[
            *WINDOW_PARAMETERS,
            OpenApiParameter("customer", str, description="Only this customer."),
            OpenApiParameter(
                "substitute",
                str,
                many=True,
                description="Routing what-if, repeatable: `openai:gpt-4o=openai:gpt-4o-mini`.",
            ),
            OpenApiParameter(
                "distill",
                str,
                many=True,
                description="Distillation what-if against a self-hosted model's price, "
                "repeatable: `openai:gpt-4o=self-hosted:llama-3-8b`.",
            ),
            OpenApiParameter(
                "max_input_tokens", int, description="What-ifs: only calls up to this."
            ),
            OpenApiParameter("feature", str, description="What-ifs: only calls of this feature."),
        ],
        responses={200: OpenApiTypes.OBJECT, **API_ERRORS, 404: ErrorSerializer},
    )
    def get(self, request: Request) -> Response:
        query = SavingsQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        window = query.validated_data
        start, end = window["from_"], window["to"]
        customer_id = None
        if "customer" in window:
            customer_id = metering_selectors.customer_get(external_id=window["customer"]).pk
        options = {
            "start": start,
            "end": end,
            "customer_id": customer_id,
            "max_input_tokens": window.get("max_input_tokens"),
            "feature": window.get("feature"),
        }
        routing = _substitutions(request.query_params.getlist("substitute"), "substitute")
        distilling = _substitutions(request.query_params.getlist("distill"), "distill")
        caching = caching_levers(start=start, end=end, customer_id=customer_id)
        return Response(
            {
                "from": start,
                "to": end,
                "customer": window.get("customer"),
                "currency": "USD",
                "caching": {
                    "calls_with_prompt_hash": caching.calls_with_prompt_hash,
                    "repeated_calls": caching.repeated_calls,
                    "repeated_share": _decimal(
                        (Decimal(caching.repeated_calls) / caching.calls_with_prompt_hash).quantize(
                            Decimal("0.0001")
                        )
                    )
                    if caching.calls_with_prompt_hash
                    else None,
                    "repeated_cost": _decimal(caching.repeated_cost),
                    "cache_hits": caching.cache_hits,
                    "cache_hit_saving": _decimal(caching.cache_hit_saving),
                    "cache_read_tokens": caching.cache_read_tokens,
                    "cache_read_saving": _decimal(caching.cache_read_saving),
                },
                "routing": [_what_if_body(what_if(substitution=s, **options)) for s in routing],
                "distillation": [
                    _what_if_body(what_if(substitution=s, **options)) for s in distilling
                ],
            }
        )


# Rows per page of the margin report (a row per customer can be many); totals cover all.
MARGIN_ROWS_MAX = 1000


class MarginsQuerySerializer(UsageQuerySerializer):
    group_by = serializers.ChoiceField(choices=GROUP_BYS, default="customer")
    customer = serializers.CharField(required=False, help_text="Only this customer.")
    outcome_type = serializers.CharField(required=False)
    model = serializers.CharField(required=False, help_text="`model` or `provider:model`.")
    feature = serializers.CharField(required=False, allow_blank=True)
    tier = serializers.CharField(required=False, allow_blank=True)

    FILTERS = ("group_by", "customer", "outcome_type", "model", "feature", "tier")

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        values = super().to_internal_value(data)
        rest = serializers.Serializer.to_internal_value(
            self, {k: data[k] for k in self.FILTERS if k in data}
        )
        return {**values, **rest}


def _margin_row_body(row: MarginRow, group_by: str) -> dict[str, Any]:
    body: dict[str, Any] = {
        "key": row.key or None,
        "revenue": _decimal(row.revenue),
        "inference_cost": _decimal(row.inference_cost),
        "margin": _decimal(row.margin),
        "margin_percent": _decimal(row.margin_percent),
        "calls": row.calls,
        "tokens": row.tokens,
        "unpriced_calls": row.unpriced_calls,
        "outcomes": None
        if row.succeeded is None
        else {"succeeded": row.succeeded, "failed": row.failed, "reversed": row.reversed},
        "cost_per_success": _decimal(row.cost_per_success),
        "revenue_by_currency": {
            code: _decimal(amount) for code, amount in sorted(row.revenue_by_currency.items())
        },
        "missing_rates": [
            {"currency": m.currency, "at": m.at}
            for m in sorted(row.missing_rates, key=lambda m: (m.currency, m.at))
        ],
    }
    if group_by == "feature":
        body["included"] = row.included
    return body


class MarginsApi(APIView):
    @extend_schema(
        operation_id="analytics_margins",
        summary="Revenue, inference cost and margin by customer, outcome type, model, "
        "feature or tier",
        description=(
            "Every billing period overlapping [from, to) counts whole: closed periods as "
            "reconciled at their close, open periods computed live. Figures are in the "
            "reporting currency (setting PAYBACK_REPORTING_CURRENCY); a figure that needs an "
            "FX rate nobody entered is null and the rate is listed in `missing_rates`. "
            "Outcome counts and cost per success exist for group_by customer and "
            "outcome_type. Rows of features a plan gives away say `included: true`."
        ),
        parameters=[
            *WINDOW_PARAMETERS,
            OpenApiParameter("group_by", str, enum=list(GROUP_BYS), default="customer"),
            OpenApiParameter("customer", str, description="Only this customer."),
            OpenApiParameter("outcome_type", str, description="Only calls of this type."),
            OpenApiParameter("model", str, description="`model` or `provider:model`."),
            OpenApiParameter("feature", str, description="Only calls of this feature."),
            OpenApiParameter("tier", str, description="Only calls of this tier."),
            *page_parameters(MARGIN_ROWS_MAX),
        ],
        responses={200: OpenApiTypes.OBJECT, **API_ERRORS, 404: ErrorSerializer},
    )
    def get(self, request: Request) -> Response:
        query = MarginsQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        params = query.validated_data
        page = page_of(request, default=MARGIN_ROWS_MAX, maximum=MARGIN_ROWS_MAX)
        if "customer" in params:
            metering_selectors.customer_get(external_id=params["customer"])  # 404 if unknown
        report = margins_report(
            start=params["from_"],
            end=params["to"],
            group_by=params["group_by"],
            filters=MarginFilters(
                customer=params.get("customer"),
                outcome_type=params.get("outcome_type"),
                model=params.get("model"),
                feature=params.get("feature"),
                tier=params.get("tier"),
            ),
            now=timezone.now(),
        )
        return Response(
            {
                "from": params["from_"],
                "to": params["to"],
                "group_by": report.group_by,
                "currency": report.currency,
                "periods": {"closed": report.closed_periods, "open": report.open_periods},
                "rows": [
                    _margin_row_body(row, report.group_by)
                    for row in report.rows[page.offset : page.offset + page.limit]
                ],
                "rows_total": len(report.rows),
                "next_offset": (
                    page.offset + page.limit
                    if page.offset + page.limit < len(report.rows)
                    else None
                ),
                "totals": _margin_row_body(report.totals, report.group_by) | {"key": None},
                "missing_rates": [
                    {"currency": m.currency, "at": m.at}
                    for m in sorted(report.missing_rates, key=lambda m: (m.currency, m.at))
                ],
            }
        )


def _premium_body(report: PremiumBreakEven) -> dict[str, Any]:
    return {
        "plan": report.plan,
        "seat_fee": _decimal(report.seat_fee),
        "currency": report.currency,
        "seat_fee_usd": _decimal(report.seat_fee_usd),
        "seats": report.seats,
        "ai_cost_per_seat_usd": {
            "median": _decimal(report.median),
            "p90": _decimal(report.p90),
            "max": _decimal(report.max),
        },
        "seats_over_fee": report.seats_over_fee,
        "share_over_fee": _decimal(report.share_over_fee),
        "tier_margin_percent": _decimal(report.tier_margin_percent),
        "target_margin_percent": _decimal(report.target_margin_percent),
        "fair_use_cap_usd": _decimal(report.fair_use_cap),
        "fair_use_cap_percentile": _decimal(report.cap_percentile),
        "missing_rate": report.seat_fee_usd is None,
    }


class PremiumBreakEvenApi(APIView):
    @extend_schema(
        operation_id="analytics_premium",
        summary="Premium break-even: AI cost per premium seat against the seat fee",
        description=(
            "Per plan with a premium seat fee: the AI cost (USD) of each premium seat (an "
            "end user with `tier: premium` calls) over [from, to), its median, p90 and max, "
            "the seats whose cost exceeds the fee, and the fair-use cap per seat that keeps "
            "the plan's target margin (null: no cap needed). Use a window of one billing "
            "period: the fee is per period."
        ),
        parameters=[
            *WINDOW_PARAMETERS,
        ],
        responses={200: OpenApiTypes.OBJECT, **API_ERRORS},
    )
    def get(self, request: Request) -> Response:
        query = UsageQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        start, end = query.validated_data["from_"], query.validated_data["to"]
        reports = premium_break_even(start=start, end=end)
        return Response(
            {"from": start, "to": end, "plans": [_premium_body(report) for report in reports]}
        )
