"""HTTP views of the outcomes app: parse, call one service or selector, render."""

from typing import Any

from django.utils import timezone
from drf_spectacular.utils import OpenApiResponse, PolymorphicProxySerializer, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from api.parsers import ExactJSONParser
from metering.api import API_ERRORS, INGEST_ERRORS, require_json
from metering.serializers import ErrorSerializer, IngestResultSerializer
from outcomes import selectors
from outcomes.schemas import parse_outcome_batch
from outcomes.serializers import (
    DisputeInputSerializer,
    DisputeSerializer,
    OutcomeBatchInputSerializer,
    OutcomeDetailSerializer,
    OutcomeInputSerializer,
    OutcomeOutputSerializer,
)
from outcomes.services import dispute_open, outcome_reverse, outcomes_record


class OutcomeRecordApi(APIView):
    parser_classes: list[Any] = []  # the body is read raw and validated by msgspec

    @extend_schema(
        operation_id="outcomes_record",
        summary="Record outcomes or move their status",
        request={
            "application/json": PolymorphicProxySerializer(
                component_name="OutcomesRecordRequest",
                serializers=[OutcomeInputSerializer, OutcomeBatchInputSerializer],
                resource_type_field_name=None,
            )
        },
        responses={
            200: IngestResultSerializer,
            **INGEST_ERRORS,
            409: OpenApiResponse(ErrorSerializer, description="A status move that is not allowed."),
        },
    )
    def post(self, request: Request) -> Response:
        require_json(request)
        outcomes = parse_outcome_batch(request.body, now=timezone.now())
        result = outcomes_record(outcomes=outcomes)
        return Response(result.as_dict())


class OutcomeDetailApi(APIView):
    @extend_schema(
        operation_id="outcomes_retrieve",
        summary="An outcome, with the calls attributed to it and their cost",
        responses={200: OutcomeDetailSerializer, 401: API_ERRORS[401], 404: ErrorSerializer},
    )
    def get(self, request: Request, external_id: str) -> Response:
        outcome = selectors.outcome_get(external_id=external_id)
        cost = selectors.outcome_cost(outcome=outcome)
        data = OutcomeOutputSerializer(outcome).data | {
            "calls": cost.calls,
            "cost": None if cost.cost is None else f"{cost.cost:.12f}",
            "unpriced_calls": cost.unpriced_calls,
        }
        return Response(data)


class OutcomeReverseApi(APIView):
    @extend_schema(
        operation_id="outcomes_reverse",
        summary="Reverse a succeeded outcome within its plan's reversal window",
        request=None,
        responses={
            200: OutcomeOutputSerializer,
            401: API_ERRORS[401],
            404: ErrorSerializer,
            409: ErrorSerializer,
        },
    )
    def post(self, request: Request, external_id: str) -> Response:
        outcome = selectors.outcome_get(external_id=external_id)
        window = selectors.reversal_window(customer=outcome.customer)
        reversed_outcome = outcome_reverse(
            external_id=external_id, window=window, now=timezone.now()
        )
        return Response(OutcomeOutputSerializer(reversed_outcome).data)


class OutcomeDisputesApi(APIView):
    parser_classes = [ExactJSONParser]

    @extend_schema(
        operation_id="outcomes_disputes_open",
        summary="The customer contests a billed outcome: an open dispute for an operator",
        request=DisputeInputSerializer,
        responses={
            201: DisputeSerializer,
            200: OpenApiResponse(DisputeSerializer, description="It was open already."),
            **API_ERRORS,
            404: ErrorSerializer,
            409: OpenApiResponse(ErrorSerializer, description="Not a success: nothing billed."),
            415: OpenApiResponse(ErrorSerializer, description="Not JSON."),
        },
    )
    def post(self, request: Request, external_id: str) -> Response:
        require_json(request)
        sent = DisputeInputSerializer(data=request.data)
        sent.is_valid(raise_exception=True)
        dispute, created = dispute_open(
            external_id=external_id, reason=sent.validated_data["reason"]
        )
        return Response(DisputeSerializer(dispute).data, status=201 if created else 200)

    @extend_schema(
        operation_id="outcomes_disputes_list",
        summary="An outcome's disputes, newest first",
        responses={200: DisputeSerializer(many=True), 401: API_ERRORS[401], 404: ErrorSerializer},
    )
    def get(self, request: Request, external_id: str) -> Response:
        outcome = selectors.outcome_get(external_id=external_id)
        disputes = outcome.disputes.select_related("outcome").order_by("-created_at", "-pk")
        return Response(DisputeSerializer(disputes, many=True).data)
