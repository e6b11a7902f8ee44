"""HTTP views of the metering app: parse, call one service or selector, render."""

from typing import Any

from django.utils import timezone
from drf_spectacular.utils import (
    OpenApiResponse,
    PolymorphicProxySerializer,
    extend_schema,
)
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from config.errors import ApiError, ErrorDetail
from metering import services
from metering.schemas import parse_event_batch
from metering.serializers import (
    ErrorSerializer,
    EventBatchInputSerializer,
    EventInputSerializer,
    IngestResultSerializer,
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
        return Response(result.as_dict())
