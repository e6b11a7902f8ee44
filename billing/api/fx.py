"""FX rates over the API: list them, and add one (what the admin and `manage.py
load_fx_rates` do, with the same checks)."""

from typing import Any

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from billing.api.common import decimal_text
from billing.fx import USD, fx_rate_create
from billing.models import FxRate
from billing.money import is_currency
from config.pagination import page_of, page_parameters, paged_response
from config.parsers import ExactJSONParser
from metering.api import API_ERRORS, require_json
from metering.serializers import AwareDateTimeField, ErrorSerializer, StrictInputSerializer


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
