"""Plans over the API: the list, one plan, its versions, and a plan document put as
`manage.py load_plans` loads it (a changed document makes a new version)."""

from decimal import Decimal
from typing import Any

import msgspec
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from billing import selectors, services
from billing.api.common import decimal_text
from billing.models import Plan, PlanVersion
from billing.serializers import (
    PlanDocumentSerializer,
    PlanSavedSerializer,
    PlanVersionDocumentSerializer,
)
from config.errors import ApiError, ErrorDetail
from config.pagination import page_of, page_parameters, paged_response
from config.parsers import ExactJSONParser
from metering.api import API_ERRORS, require_json
from metering.serializers import ErrorSerializer


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
