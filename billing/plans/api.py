"""Plans over the API: the list, one plan, its versions, and a plan document put as
`manage.py load_plans` loads it (a changed document makes a new version); a customer with
its plan, seats and how its periods run."""

from decimal import Decimal
from typing import Any

import msgspec
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from api.errors import ApiError, ErrorDetail
from api.pagination import page_of, page_parameters, paged_response
from api.parsers import ExactJSONParser
from api.queries import decimal_text
from billing.plans import selectors, services
from billing.plans.models import Plan, PlanVersion
from billing.plans.serializers import (
    CustomerWithPlanInputSerializer,
    CustomerWithPlanOutputSerializer,
    PlanDocumentSerializer,
    PlanSavedSerializer,
    PlanVersionDocumentSerializer,
)
from metering import selectors as metering_selectors
from metering.api import API_ERRORS, require_json
from metering.models import Customer
from metering.serializers import CustomerOutputSerializer, ErrorSerializer


def plan_body(version: PlanVersion) -> dict[str, Any]:
    """A version as its price-book document, every top-level field present (null or empty
    when unset: the loader's documents leave defaults out, the API's answers have one
    shape)."""
    document = selectors.plan_document(version)
    return {
        "version": version.version,
        **{
            name: _exact(msgspec.to_builtins(getattr(document, name), builtin_types=(Decimal,)))
            for name in document.__struct_fields__
        },
    }


def _exact(value: Any) -> Any:
    """Decimals as the strings people write: 0.99, 50, not 0.990000000000 or 5E+1."""
    if isinstance(value, Decimal):
        return decimal_text(value)
    if isinstance(value, list):
        return [_exact(item) for item in value]
    if isinstance(value, dict):
        return {key: _exact(item) for key, item in value.items()}
    return value


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
                documents.append(plan_body(version))
        return paged_response(request, documents, page=page, total=plans.count())


class PlanDetailApi(APIView):
    parser_classes = [ExactJSONParser]  # prices as numbers are read exactly

    @extend_schema(
        operation_id="plans_retrieve",
        summary="A plan at its current version",
        responses={200: PlanDocumentSerializer, 401: API_ERRORS[401], 404: ErrorSerializer},
    )
    def get(self, request: Request, code: str) -> Response:
        plan = selectors.plan_get(code=code)
        version = selectors.plan_version_current(plan_id=plan.pk)
        if version is None:
            raise ApiError(
                [ErrorDetail(code="not_found", message=f"Plan `{code}` has no version.")], 404
            )
        return Response(plan_body(version))

    @extend_schema(
        operation_id="plans_put",
        summary="Create or change a plan from its price-book document",
        description=(
            "The document of one plan, as in a `manage.py load_plans` file (`code` may be "
            "left out: it is the path's). Checked as the loader checks it, all or nothing; "
            "an error names the key (`outcomes[0].floor`). A document that differs from the "
            "plan's current version makes a new version (201 for a new plan), which "
            "customers are billed on from their next close; the same document again changes "
            "nothing (`changed: false`). Versions an invoice used are never edited."
        ),
        request={"application/json": OpenApiTypes.OBJECT},
        responses={
            200: PlanSavedSerializer,
            201: PlanSavedSerializer,
            **API_ERRORS,
            415: OpenApiResponse(ErrorSerializer, description="Not JSON."),
        },
    )
    def put(self, request: Request, code: str) -> Response:
        require_json(request)
        if not isinstance(request.data, dict):
            raise ApiError(
                [ErrorDetail(code="invalid_body", message="Send one plan document: an object.")]
            )
        if request.data.get("code", code) != code:
            raise ApiError(
                [
                    ErrorDetail(
                        field="code",
                        code="invalid",
                        message=f"The document's code is not the path's `{code}`.",
                    )
                ]
            )
        created = not Plan.objects.filter(code=code).exists()
        try:
            [loaded] = services.plans_load(document={"plans": [{**request.data, "code": code}]})
        except services.PriceBookError as refused:
            field = refused.where.removeprefix("plans[0]").lstrip(".") or None
            raise ApiError(
                [ErrorDetail(field=field, code="invalid", message=refused.message)]
            ) from refused
        version = selectors.plan_version_current(plan_id=Plan.objects.get(code=code).pk)
        assert version is not None and version.version == loaded.version
        return Response(
            plan_body(version) | {"changed": loaded.changed},
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )


class PlanVersionsApi(APIView):
    @extend_schema(
        operation_id="plans_versions",
        summary="A plan's versions, newest first, each with its prices and whether an "
        "invoice used it",
        parameters=page_parameters(100),
        responses={
            200: PlanVersionDocumentSerializer(many=True),
            **API_ERRORS,
            404: ErrorSerializer,
        },
    )
    def get(self, request: Request, code: str) -> Response:
        page = page_of(request, default=100, maximum=100)
        versions = selectors.plan_versions(plan=selectors.plan_get(code=code))
        return paged_response(
            request,
            [
                plan_body(version) | {"created_at": version.created_at, "billed": version.billed}
                for version in versions[page.offset : page.offset + page.limit]
            ],
            page=page,
            total=len(versions),
        )


def _customer_body(customer: Customer) -> dict[str, Any]:
    subscription = selectors.subscription_of(customer=customer)
    if subscription is None:
        return CustomerOutputSerializer(customer).data | {
            "plan": None,
            "premium_seats": 0,
            "next_plan": None,
            "started_at": None,
            "billing_anchor_day": None,
            "timezone": None,
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
        "started_at": subscription.started_at,
        "billing_anchor_day": subscription.billing_anchor_day,
        "timezone": subscription.timezone,
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
        summary="Create or update a customer, its plan, premium seats and how its periods run",
        request=CustomerWithPlanInputSerializer,
        responses={
            200: CustomerWithPlanOutputSerializer,
            201: CustomerWithPlanOutputSerializer,
            **API_ERRORS,
            409: OpenApiResponse(
                ErrorSerializer,
                description="A change of how periods run (start, anchor day, time zone) "
                "once a period has been invoiced.",
            ),
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
            periods={
                name: fields.pop(name)
                for name in ("started_at", "billing_anchor_day", "timezone")
                if name in fields
            },
            **fields,
        )
        return Response(
            _customer_body(customer),
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )
