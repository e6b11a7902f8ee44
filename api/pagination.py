"""Limits on every list the API answers: `?limit=` (at most a maximum per endpoint) and
`?offset=`. A list stays a JSON array; the next page is in a `Link: <…>; rel="next"`
header (RFC 8288) and the full count in `X-Total-Count`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiParameter
from rest_framework.request import Request
from rest_framework.response import Response

from api.errors import ApiError, ErrorDetail


def page_parameters(maximum: int) -> list[OpenApiParameter]:
    return [
        OpenApiParameter("limit", int, description=f"Items per page, 1 to {maximum}."),
        OpenApiParameter("offset", int, description="Items to skip (see the Link header)."),
    ]


# Far past any list payback keeps, and within what PostgreSQL's OFFSET takes.
MAX_OFFSET = 10**9


@dataclass(frozen=True, slots=True)
class Page:
    limit: int
    offset: int


def page_of(request: Request, *, default: int, maximum: int) -> Page:
    """The page a request asks for; 400 naming the parameter when it is not a whole
    number in range."""
    values = {}
    for name, fallback, top in (("limit", default, maximum), ("offset", 0, MAX_OFFSET)):
        raw = request.query_params.get(name)
        if raw is None:
            values[name] = fallback
            continue
        low = 1 if name == "limit" else 0
        # The length first: int() of thousands of digits is refused by Python itself.
        if not raw.isdigit() or len(raw) > len(str(top)) or int(raw) < low or int(raw) > top:
            bound = f"between {low} and {top}"
            raise ApiError(
                [
                    ErrorDetail(
                        field=name, code="invalid", message=f"Must be a whole number {bound}."
                    )
                ]
            )
        values[name] = int(raw)
    return Page(values["limit"], values["offset"])


def paged_response(request: Request, items: list[object], *, page: Page, total: int) -> Response:
    response = Response(items)
    response["X-Total-Count"] = str(total)
    if page.offset + page.limit < total:
        query = request.query_params.copy()
        query["limit"], query["offset"] = str(page.limit), str(page.offset + page.limit)
        response["Link"] = (
            f'<{request.build_absolute_uri(request.path)}?{query.urlencode()}>; rel="next"'
        )
    return response


def paged_list(
    request: Request,
    items: QuerySet[Any],
    render: Callable[[Any], object],
    *,
    default: int,
    maximum: int,
) -> Response:
    """The page of `items` the request asks for, each rendered, with the paging headers."""
    page = page_of(request, default=default, maximum=maximum)
    return paged_response(
        request,
        [render(item) for item in items[page.offset : page.offset + page.limit]],
        page=page,
        total=items.count(),
    )
