"""Stripe's webhooks: no API key, the Stripe-Signature is the authentication."""

import math
from typing import Any

from django.conf import settings
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiResponse,
    extend_schema,
    inline_serializer,
)
from rest_framework import serializers
from rest_framework.exceptions import Throttled
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from api.errors import ApiError, ErrorDetail
from api.throttling import client_address, window_hit
from billing.stripe_sync.services.webhooks import webhook_receive
from billing.stripe_sync.stripe_api import InvalidPayload, InvalidSignature
from metering.serializers import ErrorSerializer


class StripeWebhookApi(APIView):
    """Stripe's webhooks: no API key, the Stripe-Signature is the authentication."""

    authentication_classes: list[Any] = []
    permission_classes = [AllowAny]
    parser_classes: list[Any] = []  # the raw body is what the signature covers

    @extend_schema(
        operation_id="webhooks_stripe",
        summary="Stripe events (signed with Stripe-Signature)",
        description=(
            "Verified before anything is kept; a refused request keeps only its first bytes "
            "and why. At most STRIPE_WEBHOOK_MAX_BODY_BYTES, and STRIPE_WEBHOOK_RATE_LIMIT "
            "requests per client address."
        ),
        request={"application/json": OpenApiTypes.OBJECT},
        responses={
            200: inline_serializer(
                "WebhookReceived",
                {"received": serializers.BooleanField(), "duplicate": serializers.BooleanField()},
            ),
            400: ErrorSerializer,
            413: OpenApiResponse(ErrorSerializer, description="Larger than any Stripe event."),
            429: OpenApiResponse(
                ErrorSerializer, description="Too many requests from this address; see Retry-After."
            ),
        },
        auth=[],
    )
    def post(self, request: Request) -> Response:
        address = client_address(request)
        retry_after = window_hit("stripe-webhook", address, settings.STRIPE_WEBHOOK_RATE_LIMIT)
        if retry_after is not None:
            raise Throttled(wait=math.ceil(retry_after))
        declared = request.META.get("CONTENT_LENGTH") or "0"
        limit = settings.STRIPE_WEBHOOK_MAX_BODY_BYTES
        if (declared.isdigit() and int(declared) > limit) or len(request.body) > limit:
            raise ApiError(
                [
                    ErrorDetail(
                        code="body_too_large", message=f"A Stripe event is under {limit} bytes."
                    )
                ],
                status_code=413,
            )
        try:
            _, created = webhook_receive(
                body=request.body,
                signature=request.headers.get("Stripe-Signature"),
                address=address,
            )
        except InvalidSignature as refused:
            raise ApiError(
                [
                    ErrorDetail(
                        field="Stripe-Signature", code="invalid_signature", message=str(refused)
                    )
                ]
            ) from refused
        except InvalidPayload as refused:
            raise ApiError([ErrorDetail(code="invalid_body", message=str(refused))]) from refused
        return Response({"received": True, "duplicate": not created})
