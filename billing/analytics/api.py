"""The unit-economics reports: savings (the cost levers), margins, premium break-even."""

from decimal import Decimal
from typing import Any

from django.utils import timezone
from drf_spectacular.utils import (
    OpenApiParameter,
    extend_schema,
)
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from api.errors import ApiError, ErrorDetail
from api.pagination import page_of, page_parameters
from api.queries import WINDOW_PARAMETERS, UsageQuerySerializer, decimal_text
from billing.analytics.selectors.margins import GROUP_BYS, MarginFilters, MarginRow, margins_report
from billing.analytics.selectors.premium import PremiumBreakEven, premium_break_even
from billing.analytics.selectors.savings import Substitution, WhatIf, caching_levers, what_if
from billing.analytics.serializers import (
    MarginReportSerializer,
    PremiumBreakEvenSerializer,
    SavingsSerializer,
)
from common.replicas import replica_reads
from metering import selectors as metering_selectors
from metering.api import API_ERRORS
from metering.serializers import ErrorSerializer


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
        "cost_before": decimal_text(result.cost_before),
        "cost_after": decimal_text(result.cost_after),
        "saving": decimal_text(result.saving),
    }


class SavingsQuerySerializer(UsageQuerySerializer):
    customer = serializers.CharField(required=False, help_text="One customer's external id.")
    max_input_tokens = serializers.IntegerField(required=False, min_value=0, max_value=2**62)
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
        responses={200: SavingsSerializer, **API_ERRORS, 404: ErrorSerializer},
    )
    @replica_reads()
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
                    "repeated_share": decimal_text(
                        (Decimal(caching.repeated_calls) / caching.calls_with_prompt_hash).quantize(
                            Decimal("0.0001")
                        )
                    )
                    if caching.calls_with_prompt_hash
                    else None,
                    "repeated_cost": decimal_text(caching.repeated_cost),
                    "cache_hits": caching.cache_hits,
                    "cache_hit_saving": decimal_text(caching.cache_hit_saving),
                    "cache_read_tokens": caching.cache_read_tokens,
                    "cache_read_saving": decimal_text(caching.cache_read_saving),
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
        "revenue": decimal_text(row.revenue),
        "written_off": decimal_text(row.written_off),
        "discount": decimal_text(row.discount),
        "inference_cost": decimal_text(row.known_cost),
        "cost_status": row.cost_status.value,
        "margin": decimal_text(row.margin),
        "margin_percent": decimal_text(row.margin_percent),
        "calls": row.calls,
        "tokens": row.tokens,
        "unpriced_calls": row.unpriced_calls,
        "outcomes": None
        if row.succeeded is None
        else {
            "succeeded": row.succeeded,
            "failed": row.failed,
            "reversed": row.reversed,
            "disputed": row.disputed,
            "disputes_accepted": row.disputes_accepted,
            "dispute_rate_percent": decimal_text(row.dispute_rate_percent),
        },
        "cost_per_success": decimal_text(row.cost_per_success),
        "revenue_by_currency": {
            code: decimal_text(amount) for code, amount in sorted(row.revenue_by_currency.items())
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
        responses={200: MarginReportSerializer, **API_ERRORS, 404: ErrorSerializer},
    )
    @replica_reads()
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
        "seat_fee": decimal_text(report.seat_fee),
        "currency": report.currency,
        "seat_fee_usd": decimal_text(report.seat_fee_usd),
        "seats": report.seats,
        "ai_cost_per_seat_usd": {
            "median": decimal_text(report.median),
            "p90": decimal_text(report.p90),
            "max": decimal_text(report.max),
        },
        "seats_over_fee": report.seats_over_fee,
        "share_over_fee": decimal_text(report.share_over_fee),
        "tier_margin_percent": decimal_text(report.tier_margin_percent),
        "target_margin_percent": decimal_text(report.target_margin_percent),
        "fair_use_cap_usd": decimal_text(report.fair_use_cap),
        "fair_use_cap_percentile": decimal_text(report.cap_percentile),
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
        responses={200: PremiumBreakEvenSerializer, **API_ERRORS},
    )
    @replica_reads()
    def get(self, request: Request) -> Response:
        query = UsageQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        start, end = query.validated_data["from_"], query.validated_data["to"]
        reports = premium_break_even(start=start, end=end)
        return Response(
            {"from": start, "to": end, "plans": [_premium_body(report) for report in reports]}
        )
