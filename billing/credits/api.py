"""Credits over the API: a customer's balances, grants and ledger; promotional grants
made and voided."""

from datetime import datetime, timedelta
from typing import Any

from django.utils import timezone
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from api.errors import ApiError, ErrorDetail
from api.pagination import page_parameters, paged_list
from api.parsers import ExactJSONParser
from api.queries import decimal_text
from billing.credits import selectors, services
from billing.credits.models import CreditEntry, CreditGrant, TopUp
from billing.credits.serializers import (
    AutoTopUpSerializer,
    CreditsSerializer,
    EntrySerializer,
    GrantInputSerializer,
    GrantSerializer,
    LiabilitySerializer,
    TopUpInputSerializer,
    TopUpSerializer,
    VoidInputSerializer,
)
from billing.plans import selectors as plan_selectors
from metering import selectors as metering_selectors
from metering.api import API_ERRORS, require_json
from metering.models import Customer
from metering.serializers import ErrorSerializer

NOT_FOUND = {404: OpenApiResponse(ErrorSerializer, description="No such customer or grant.")}
# Every endpoint's answers without a 400: nothing it takes can be wrong.
KEYED = {401: API_ERRORS[401], 429: API_ERRORS[429], **NOT_FOUND}
NOT_JSON = {415: OpenApiResponse(ErrorSerializer, description="Not JSON.")}


def running_period(customer: Customer, now: datetime) -> tuple[datetime, datetime]:
    """The customer's billing period holding `now`; the moment itself without a plan."""
    period = plan_selectors.customer_period(customer=customer, moment=now)
    return period or (now, now + timedelta(microseconds=1))


def grant_body(grant: CreditGrant) -> dict[str, Any]:
    """A grant, annotated with its balance (selectors), as the API answers it."""
    return {
        "id": grant.external_id,
        "kind": grant.kind,
        "currency": grant.currency,
        "amount": decimal_text(grant.amount),
        "balance": decimal_text(grant.balance),  # type: ignore[attr-defined]
        "priority": grant.priority,
        "effective_at": grant.effective_at,
        "expires_at": grant.expires_at,
        "description": grant.description,
        "voided_at": grant.voided_at,
        "void_reason": grant.void_reason,
        "created_at": grant.created_at,
    }


def _entry_body(entry: CreditEntry) -> dict[str, Any]:
    return {
        "grant": entry.grant.external_id,
        "kind": entry.kind,
        "amount": decimal_text(entry.amount),
        "currency": entry.grant.currency,
        "invoice_id": entry.invoice_id,
        "at": entry.at,
    }


class CustomerCreditsApi(APIView):
    @extend_schema(
        operation_id="customers_credits",
        summary="The customer's credit balances, per currency",
        responses={200: CreditsSerializer, **KEYED},
    )
    def get(self, request: Request, external_id: str) -> Response:
        customer = metering_selectors.customer_get(external_id=external_id)
        start, end = running_period(customer, timezone.now())
        balances = selectors.customer_balances(customer_id=customer.pk, start=start, end=end)
        return Response(
            {
                "customer": customer.external_id,
                "period_start": start,
                "period_end": end,
                "balances": [
                    {
                        "currency": balance.currency,
                        "available": decimal_text(balance.available),
                        "granted": decimal_text(balance.granted),
                        "drawn": decimal_text(balance.drawn),
                        "expired": decimal_text(balance.expired),
                        "voided": decimal_text(balance.voided),
                    }
                    for balance in balances
                ],
            }
        )


class CustomerGrantsApi(APIView):
    parser_classes = [ExactJSONParser]  # amounts sent as numbers are read exactly

    @extend_schema(
        operation_id="customers_credit_grants",
        summary="The customer's grants, in the order invoices draw on them",
        parameters=page_parameters(100),
        responses={200: GrantSerializer(many=True), **API_ERRORS, **NOT_FOUND},
    )
    def get(self, request: Request, external_id: str) -> Response:
        customer = metering_selectors.customer_get(external_id=external_id)
        grants = selectors.customer_grants(customer_id=customer.pk)
        return paged_list(request, grants, grant_body, default=100, maximum=100)

    @extend_schema(
        operation_id="customers_credit_grants_create",
        summary="Give the customer promotional credits",
        description=(
            "Credits pay the invoices of the periods they are live in, lowest priority "
            "first, then the earliest expiry, as a negative `credits_applied` line; what "
            "is left when a grant expires expires with the close of the period its expiry "
            "falls in. The same `id` again answers 200 with the grant; other terms under "
            "that id are refused (409)."
        ),
        request=GrantInputSerializer,
        responses={
            200: GrantSerializer,
            201: GrantSerializer,
            **API_ERRORS,
            **NOT_FOUND,
            409: OpenApiResponse(ErrorSerializer, description="The id has other terms."),
            **NOT_JSON,
        },
    )
    def post(self, request: Request, external_id: str) -> Response:
        require_json(request)
        customer = metering_selectors.customer_get(external_id=external_id)
        sent = GrantInputSerializer(data=request.data)
        sent.is_valid(raise_exception=True)
        fields = dict(sent.validated_data)
        currency = fields.pop("currency", None) or _plan_currency(customer)
        grant, created = services.grant_create(
            customer=customer,
            request=services.GrantRequest(
                external_id=fields.pop("id", ""), currency=currency, **fields
            ),
        )
        body = grant_body(selectors.customer_grants(customer_id=customer.pk).get(pk=grant.pk))
        return Response(body, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


def _plan_currency(customer: Customer) -> str:
    subscription = plan_selectors.subscription_of(customer=customer)
    version = (
        plan_selectors.plan_version_current(plan_id=subscription.plan_id)
        if subscription is not None
        else None
    )
    if version is None:
        raise ApiError(
            [
                ErrorDetail(
                    field="currency",
                    code="required",
                    message="The customer has no plan: say the grant's currency.",
                )
            ]
        )
    return version.currency


class GrantVoidApi(APIView):
    @extend_schema(
        operation_id="customers_credit_grants_void",
        summary="Void a grant: what it still holds is taken back (what invoices drew stays)",
        request=VoidInputSerializer,
        responses={200: GrantSerializer, **API_ERRORS, **NOT_FOUND, **NOT_JSON},
    )
    def post(self, request: Request, external_id: str, grant_id: str) -> Response:
        customer = metering_selectors.customer_get(external_id=external_id)
        sent = VoidInputSerializer(data=request.data)
        sent.is_valid(raise_exception=True)
        grant = selectors.customer_grants(customer_id=customer.pk).filter(external_id=grant_id)
        found = grant.first()
        if found is None:
            raise ApiError([ErrorDetail(code="not_found", message=f"No grant `{grant_id}`.")], 404)
        services.grant_void(grant_id=found.pk, reason=sent.validated_data["reason"])
        return Response(grant_body(grant.get()))


class CustomerLedgerApi(APIView):
    @extend_schema(
        operation_id="customers_credit_ledger",
        summary="The customer's credit ledger, oldest first: every grant, draw, expiry, void",
        parameters=page_parameters(1000),
        responses={200: EntrySerializer(many=True), **API_ERRORS, **NOT_FOUND},
    )
    def get(self, request: Request, external_id: str) -> Response:
        customer = metering_selectors.customer_get(external_id=external_id)
        entries = selectors.customer_ledger(customer_id=customer.pk)
        return paged_list(request, entries, _entry_body, default=1000, maximum=1000)


def _top_up_body(top_up: TopUp) -> dict[str, Any]:
    return {
        "id": top_up.external_id,
        "currency": top_up.currency,
        "amount": decimal_text(top_up.amount),
        "auto": top_up.auto,
        "status": top_up.status,
        "hosted_invoice_url": top_up.hosted_invoice_url,
        "grant": top_up.grant.external_id if top_up.grant else None,
        "created_at": top_up.created_at,
        "paid_at": top_up.paid_at,
    }


class CustomerTopUpsApi(APIView):
    parser_classes = [ExactJSONParser]

    @extend_schema(
        operation_id="customers_credit_top_ups",
        summary="The customer's top-ups, newest first",
        parameters=page_parameters(100),
        responses={200: TopUpSerializer(many=True), **API_ERRORS, **NOT_FOUND},
    )
    def get(self, request: Request, external_id: str) -> Response:
        customer = metering_selectors.customer_get(external_id=external_id)
        top_ups = selectors.customer_top_ups(customer_id=customer.pk)
        return paged_list(request, top_ups, _top_up_body, default=100, maximum=100)

    @extend_schema(
        operation_id="customers_credit_top_ups_create",
        summary="Buy credits: a Stripe invoice charged automatically; granted once paid",
        description=(
            "Answers 202 with the top-up `pending`: its Stripe invoice is made after the "
            "answer (`open` once Stripe charges it), and its paid grant is made when Stripe "
            "says the invoice is paid (the `invoice.paid` webhook), once. The same `id` "
            "again answers 200 with the top-up; other terms under it are a 409."
        ),
        request=TopUpInputSerializer,
        responses={
            200: TopUpSerializer,
            202: TopUpSerializer,
            **API_ERRORS,
            **NOT_FOUND,
            409: OpenApiResponse(ErrorSerializer, description="The id has other terms."),
            **NOT_JSON,
        },
    )
    def post(self, request: Request, external_id: str) -> Response:
        require_json(request)
        customer = metering_selectors.customer_get(external_id=external_id)
        sent = TopUpInputSerializer(data=request.data)
        sent.is_valid(raise_exception=True)
        data = sent.validated_data
        top_up, created = services.top_up_create(
            customer=customer,
            amount=data["amount"],
            currency=data.get("currency") or _plan_currency(customer),
            external_id=data.get("id", ""),
        )
        return Response(
            _top_up_body(top_up),
            status=status.HTTP_202_ACCEPTED if created else status.HTTP_200_OK,
        )


class AutoTopUpApi(APIView):
    parser_classes = [ExactJSONParser]

    @extend_schema(
        operation_id="customers_credit_auto_top_up_put",
        summary="Buy `amount` whenever what is available falls below `threshold`",
        description=(
            "Checked every minute against what the customer has available (as "
            "`GET /v1/customers/{id}/available` says it): a top-up when it falls below the "
            "threshold, once per crossing (again only after it is back at or above it)."
        ),
        request=AutoTopUpSerializer,
        responses={200: AutoTopUpSerializer, **API_ERRORS, **NOT_FOUND, **NOT_JSON},
    )
    def put(self, request: Request, external_id: str) -> Response:
        require_json(request)
        customer = metering_selectors.customer_get(external_id=external_id)
        sent = AutoTopUpSerializer(data=request.data)
        sent.is_valid(raise_exception=True)
        data = sent.validated_data
        auto = services.auto_top_up_set(
            customer=customer,
            threshold=data["threshold"],
            amount=data["amount"],
            currency=data.get("currency") or _plan_currency(customer),
        )
        return Response(
            {
                "threshold": decimal_text(auto.threshold),
                "amount": decimal_text(auto.amount),
                "currency": auto.currency,
            }
        )

    @extend_schema(
        operation_id="customers_credit_auto_top_up_delete",
        summary="Stop buying credits automatically",
        responses={204: None, 401: API_ERRORS[401], 429: API_ERRORS[429], **NOT_FOUND},
    )
    def delete(self, request: Request, external_id: str) -> Response:
        customer = metering_selectors.customer_get(external_id=external_id)
        services.auto_top_up_remove(customer=customer)
        return Response(status=status.HTTP_204_NO_CONTENT)


class CreditLiabilityApi(APIView):
    @extend_schema(
        operation_id="credits_liability",
        summary="What bought credits still hold, per currency: owed to customers",
        responses={200: LiabilitySerializer(many=True), 401: API_ERRORS[401], 429: API_ERRORS[429]},
    )
    def get(self, request: Request) -> Response:
        return Response(
            [
                {"currency": currency, "liability": decimal_text(amount)}
                for currency, amount in sorted(selectors.credit_liability().items())
            ]
        )
