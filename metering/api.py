"""HTTP views of the metering app: parse, call one service or selector, render."""

from datetime import UTC, datetime
from typing import Any

from django.utils import timezone
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    PolymorphicProxySerializer,
    extend_schema,
)
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from config.errors import ApiError, ErrorDetail
from metering import selectors, services
from metering.schemas import parse_event_batch
from metering.serializers import (
    CustomerInputSerializer,
    CustomerOutputSerializer,
    ErrorSerializer,
    EventBatchInputSerializer,
    EventInputSerializer,
    IngestResultSerializer,
    UsageOutputSerializer,
    UsageTotalsSerializer,
)

_ERRORS = {
    400: OpenApiResponse(ErrorSerializer, description="Bad input: one error per bad field."),
    401: OpenApiResponse(ErrorSerializer, description="Missing, unknown, revoked or expired key."),
}
# The answers every batch-ingest endpoint shares (events, outcomes).
INGEST_ERRORS = {
    **_ERRORS,
    413: OpenApiResponse(ErrorSerializer, description="Body too large."),
    415: OpenApiResponse(ErrorSerializer, description="Not JSON."),
}


def require_json(request: Request) -> None:
    content_type = request.content_type.split(";")[0].strip().lower()
    if content_type != "application/json":
        raise ApiError(
            [
                ErrorDetail(
                    code="unsupported_media_type",
                    message="Send the body as `Content-Type: application/json`.",
                )
            ],
            status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
        )


class EventIngestApi(APIView):
    # The body is read raw and validated by msgspec (schemas.py): DRF's parsers would
    # decode the JSON a second time.
    parser_classes: list[Any] = []

    @extend_schema(
        operation_id="events_ingest",
        summary="Record usage events (one per LLM call)",
        request={
            "application/json": PolymorphicProxySerializer(
                component_name="EventsIngestRequest",
                serializers=[EventInputSerializer, EventBatchInputSerializer],
                resource_type_field_name=None,
            )
        },
        responses={200: IngestResultSerializer, **INGEST_ERRORS},
    )
    def post(self, request: Request) -> Response:
        require_json(request)
        events = parse_event_batch(request.body, now=timezone.now())
        result = services.events_ingest(events=events)
        return Response(
            {
                "accepted": result.accepted,
                "duplicates": result.duplicates,
                "conflicts": result.conflicts,
            }
        )


class CustomerDetailApi(APIView):
    @extend_schema(
        operation_id="customers_retrieve",
        summary="The customer",
        responses={200: CustomerOutputSerializer, 401: _ERRORS[401], 404: ErrorSerializer},
    )
    def get(self, request: Request, external_id: str) -> Response:
        customer = selectors.customer_get(external_id=external_id)
        return Response(CustomerOutputSerializer(customer).data)

    @extend_schema(
        operation_id="customers_upsert",
        summary="Create or update a customer",
        request=CustomerInputSerializer,
        responses={200: CustomerOutputSerializer, 201: CustomerOutputSerializer, **_ERRORS},
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
        serializer = CustomerInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        customer, created = services.customer_upsert(
            external_id=external_id, **serializer.validated_data
        )
        return Response(
            CustomerOutputSerializer(customer).data,
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


def _totals(totals: selectors.UsageTotals) -> dict[str, Any]:
    return UsageTotalsSerializer(totals).data


class CustomerUsageApi(APIView):
    @extend_schema(
        operation_id="customers_usage",
        summary="The customer's usage and cost over a window (default: this calendar month)",
        parameters=[
            OpenApiParameter("from", datetime, description="Inclusive, ISO 8601."),
            OpenApiParameter("to", datetime, description="Exclusive, ISO 8601."),
        ],
        responses={200: UsageOutputSerializer, **_ERRORS, 404: ErrorSerializer},
    )
    def get(self, request: Request, external_id: str) -> Response:
        query = UsageQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        customer = selectors.customer_get(external_id=external_id)
        usage = selectors.customer_usage(
            customer=customer, start=query.validated_data["from_"], end=query.validated_data["to"]
        )
        return Response(
            {
                "customer": customer.external_id,
                "start": usage.start,
                "end": usage.end,
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
            }
        )
