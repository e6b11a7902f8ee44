"""HTTP views of the metering app: parse, call one service or selector, render."""

from typing import Any

from django.http import HttpRequest
from django.utils import timezone
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    PolymorphicProxySerializer,
    extend_schema,
)
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from api.errors import ApiError, ErrorDetail
from api.pagination import page_of, page_parameters, paged_response
from api.parsers import ExactJSONParser
from metering import selectors, services
from metering.schemas import parse_event_batch
from metering.serializers import (
    ErrorSerializer,
    EventBatchInputSerializer,
    EventInputSerializer,
    IngestResultSerializer,
    PriceOverrideInputSerializer,
    PriceOverrideSerializer,
)

API_ERRORS = {
    400: OpenApiResponse(ErrorSerializer, description="Bad input: one error per bad field."),
    401: OpenApiResponse(ErrorSerializer, description="Missing, unknown, revoked or expired key."),
    429: OpenApiResponse(
        ErrorSerializer,
        description="Over the key's rate, or too many failed keys from this address; see "
        "Retry-After.",
    ),
}
# The answers every batch-ingest endpoint shares (events, outcomes).
INGEST_ERRORS = {
    **API_ERRORS,
    413: OpenApiResponse(ErrorSerializer, description="Body too large."),
    415: OpenApiResponse(ErrorSerializer, description="Not JSON."),
}


def require_json(request: Request | HttpRequest) -> None:
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
        return Response(services.events_ingest(events=events).as_dict())


class PriceOverridesApi(APIView):
    parser_classes = [ExactJSONParser]  # prices sent as numbers are read exactly

    @extend_schema(
        operation_id="price_overrides_list",
        summary="Operator prices of models, by provider and model, newest first",
        parameters=[
            OpenApiParameter("provider", str, description="Only this provider."),
            OpenApiParameter("model", str, description="Only this model."),
            *page_parameters(1000),
        ],
        responses={200: PriceOverrideSerializer(many=True), **API_ERRORS},
    )
    def get(self, request: Request) -> Response:
        page = page_of(request, default=1000, maximum=1000)
        overrides = selectors.price_overrides(
            provider=request.query_params.get("provider"),
            model=request.query_params.get("model"),
        )
        return paged_response(
            request,
            PriceOverrideSerializer(
                overrides[page.offset : page.offset + page.limit], many=True
            ).data,
            page=page,
            total=overrides.count(),
        )

    @extend_schema(
        operation_id="price_overrides_create",
        summary="Price a model from a moment on (beats the genai-prices catalog)",
        description=(
            "As in the admin: calls of that model from `effective_from` on are priced by it "
            "at ingest, and the unpriced calls it covers are priced by a task (a close bills "
            "them as late usage where their feature is passed through). The same prices "
            "again are answered 200; other prices for the same model and moment are refused "
            "(409)."
        ),
        request=PriceOverrideInputSerializer,
        responses={
            200: PriceOverrideSerializer,
            201: PriceOverrideSerializer,
            **API_ERRORS,
            409: OpenApiResponse(ErrorSerializer, description="Other prices for that moment."),
            415: OpenApiResponse(ErrorSerializer, description="Not JSON."),
        },
    )
    def post(self, request: Request) -> Response:
        require_json(request)
        sent = PriceOverrideInputSerializer(data=request.data)
        sent.is_valid(raise_exception=True)
        override, created = services.price_override_create(**sent.validated_data)
        return Response(
            PriceOverrideSerializer(override).data,
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )
