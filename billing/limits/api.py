"""Authorizing spend over the API: may this customer do this now? Reservations, their
settle and release, and the customer's spend limit."""

from datetime import timedelta
from typing import Any

from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from api.errors import ApiError, ErrorDetail
from api.parsers import ExactJSONParser
from api.queries import decimal_text
from billing.limits import selectors, services
from billing.limits.models import Reservation
from billing.limits.serializers import (
    AuthorizationSerializer,
    AuthorizeInputSerializer,
    AvailableSerializer,
    ReservationSerializer,
    SettleInputSerializer,
    SpendLimitSerializer,
)
from metering import selectors as metering_selectors
from metering.api import API_ERRORS, require_json
from metering.serializers import ErrorSerializer

NOT_FOUND = {404: OpenApiResponse(ErrorSerializer, description="No such customer or reservation.")}
NOT_JSON = {415: OpenApiResponse(ErrorSerializer, description="Not JSON.")}
NOT_OPEN = {409: OpenApiResponse(ErrorSerializer, description="Not open any more.")}


def _available_body(available: selectors.Available) -> dict[str, Any]:
    return {
        "currency": available.currency,
        "period_start": available.period_start,
        "period_end": available.period_end,
        "credits": decimal_text(available.credits),
        "billed": decimal_text(available.billed),
        "reserved": decimal_text(available.reserved),
        "available": decimal_text(available.amount),
        "budget": decimal_text(available.limit.budget),
        "budget_left": decimal_text(available.budget_left),
        "cost": decimal_text(available.cost),
        "cost_budget": decimal_text(available.limit.cost_budget),
        "mode": available.limit.mode,
        "checks_credits": available.limit.credits,
        "checks_fair_use": available.limit.fair_use,
        "seat": available.seat
        and {
            "user": available.seat.user,
            "cost": decimal_text(available.seat.cost),
            "cap": decimal_text(available.seat_cap),
        },
    }


def _reservation_body(reservation: Reservation) -> dict[str, Any]:
    return {
        "id": reservation.public_id,
        "customer": reservation.customer.external_id,
        "external_id": reservation.external_id,
        "currency": reservation.currency,
        "amount": decimal_text(reservation.amount),
        "outcome_type": reservation.outcome_type,
        "quantity": reservation.quantity,
        "status": reservation.status,
        "expires_at": reservation.expires_at,
        "settled_amount": decimal_text(reservation.settled_amount),
        "ended_at": reservation.ended_at,
    }


class AuthorizeApi(APIView):
    parser_classes = [ExactJSONParser]  # amounts sent as numbers are read exactly

    @extend_schema(
        operation_id="customers_authorize",
        summary="May the customer do this now? Reserve what it will bill",
        description=(
            "Priced from `amount`, or from `outcome_type` and `quantity` at the plan's "
            "prices (tiers and included quantity as they stand). Checked against what "
            "credits live in the running period hold, less what its usage bills so far and "
            "what open reservations hold (unless the limit's `credits` is off), and against "
            "the period's budgets. Under a `hard` limit what exceeds any is refused "
            "(`allowed: false`, nothing reserved); under `soft` or none it is allowed; "
            "`exceeds` lists what it exceeds. Concurrent authorizations of one customer "
            "never reserve more than was available between them."
        ),
        request=AuthorizeInputSerializer,
        responses={
            200: AuthorizationSerializer,
            **API_ERRORS,
            **NOT_FOUND,
            409: OpenApiResponse(ErrorSerializer, description="The customer has no plan."),
            **NOT_JSON,
        },
    )
    def post(self, request: Request, external_id: str) -> Response:
        require_json(request)
        customer = metering_selectors.customer_get(external_id=external_id)
        sent = AuthorizeInputSerializer(data=request.data)
        sent.is_valid(raise_exception=True)
        data = sent.validated_data
        answer = services.authorize(
            customer=customer,
            request=services.SpendRequest(
                external_id=data.get("id", ""),
                amount=data.get("amount"),
                outcome_type=data.get("outcome_type", ""),
                quantity=data.get("quantity"),
                ttl=timedelta(seconds=data["ttl_seconds"]),
                user=data.get("user", ""),
            ),
            now=timezone.now(),
        )
        return Response(
            {
                "allowed": answer.allowed,
                "exceeds": answer.exceeds,
                "amount": decimal_text(answer.amount),
                "reservation": answer.reservation and _reservation_body(answer.reservation),
                "available": _available_body(answer.available),
            }
        )


class CustomerAvailableApi(APIView):
    @extend_schema(
        operation_id="customers_available",
        summary="What the customer may still spend in its running period",
        parameters=[
            OpenApiParameter(
                "user", str, description="A premium seat (end user): its cost and cap too."
            )
        ],
        responses={
            200: AvailableSerializer,
            **API_ERRORS,  # 400: a `user` the API cannot read (a NUL character)
            **NOT_FOUND,
            409: OpenApiResponse(ErrorSerializer, description="The customer has no plan."),
        },
    )
    def get(self, request: Request, external_id: str) -> Response:
        customer = metering_selectors.customer_get(external_id=external_id)
        try:
            available = selectors.available(
                customer=customer,
                now=timezone.now(),
                user=request.query_params.get("user", "")[:200],
            )
        except selectors.NoPlan:
            raise ApiError(
                [ErrorDetail(code="no_plan", message=f"Customer `{external_id}` has no plan.")],
                409,
            ) from None
        return Response(_available_body(available))


class SpendLimitApi(APIView):
    parser_classes = [ExactJSONParser]

    @extend_schema(
        operation_id="customers_spend_limit_put",
        summary="How the customer's authorizations are answered (none, hard, soft) and "
        "checked (credits, budgets per period, fair use per premium seat)",
        request=SpendLimitSerializer,
        responses={200: SpendLimitSerializer, **API_ERRORS, **NOT_FOUND, **NOT_JSON},
    )
    def put(self, request: Request, external_id: str) -> Response:
        require_json(request)
        customer = metering_selectors.customer_get(external_id=external_id)
        sent = SpendLimitSerializer(data=request.data)
        sent.is_valid(raise_exception=True)
        limit = services.spend_limit_set(customer=customer, **sent.validated_data)
        return Response(
            {
                "mode": limit.mode,
                "credits": limit.credits,
                "budget": decimal_text(limit.budget),
                "cost_budget": decimal_text(limit.cost_budget),
                "fair_use": limit.fair_use,
                "seat_cost_cap": decimal_text(limit.seat_cost_cap),
            }
        )


class ReservationApi(APIView):
    @extend_schema(
        operation_id="reservations_retrieve",
        summary="A reservation and its status",
        responses={200: ReservationSerializer, 401: API_ERRORS[401], **NOT_FOUND},
    )
    def get(self, request: Request, reservation_id: str) -> Response:
        reservation = (
            Reservation.objects.select_related("customer").filter(public_id=reservation_id).first()
        )
        if reservation is None:
            raise ApiError(
                [ErrorDetail(code="not_found", message=f"No reservation `{reservation_id}`.")],
                404,
            )
        return Response(_reservation_body(reservation))


class ReservationSettleApi(APIView):
    parser_classes = [ExactJSONParser]

    @extend_schema(
        operation_id="reservations_settle",
        summary="Settle a reservation with what the work actually bills",
        request=SettleInputSerializer,
        responses={
            200: ReservationSerializer,
            **API_ERRORS,
            **NOT_FOUND,
            **NOT_OPEN,
            **NOT_JSON,
        },
    )
    def post(self, request: Request, reservation_id: str) -> Response:
        require_json(request)
        sent = SettleInputSerializer(data=request.data)
        sent.is_valid(raise_exception=True)
        reservation = services.reservation_settle(
            public_id=reservation_id, amount=sent.validated_data["amount"], now=timezone.now()
        )
        return Response(_reservation_body(reservation))


class ReservationReleaseApi(APIView):
    @extend_schema(
        operation_id="reservations_release",
        summary="Release a reservation: the work did not happen",
        request=None,
        responses={200: ReservationSerializer, 401: API_ERRORS[401], **NOT_FOUND, **NOT_OPEN},
    )
    def post(self, request: Request, reservation_id: str) -> Response:
        reservation = services.reservation_release(public_id=reservation_id, now=timezone.now())
        return Response(_reservation_body(reservation))
