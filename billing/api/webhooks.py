"""Stripe's webhooks: no API key, the Stripe-Signature is the authentication."""

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    extend_schema,
    inline_serializer,
)
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from billing.integrations.stripe import InvalidSignature
from billing.services.webhooks import webhook_receive
from config.errors import ApiError, ErrorDetail
from metering.serializers import ErrorSerializer


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
