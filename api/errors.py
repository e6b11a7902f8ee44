"""The API's one error shape: {"errors": [{"index"?, "field"?, "code", "message"}]}."""

from dataclasses import dataclass
from typing import Any

from django.http import HttpRequest, JsonResponse
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler


@dataclass(frozen=True, slots=True)
class ErrorDetail:
    code: str
    message: str
    field: str | None = None
    index: int | None = None

    def as_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {}
        if self.index is not None:
            body["index"] = self.index
        if self.field is not None:
            body["field"] = self.field
        body["code"] = self.code
        body["message"] = self.message
        return body


class ApiError(Exception):
    """Raised by services and views for a request the API refuses; rendered as JSON."""

    def __init__(self, errors: list[ErrorDetail], status_code: int = 400) -> None:
        super().__init__(errors[0].message if errors else "error")
        self.errors = errors
        self.status_code = status_code


def refusal(field: str | None, code: str, message: str, status: int = 400) -> ApiError:
    """A request refused for one reason: `field` (None: the request as a whole), a code
    and a message people can act on."""
    return ApiError([ErrorDetail(field=field, code=code, message=message)], status_code=status)


def error_body(errors: list[ErrorDetail]) -> dict[str, list[dict[str, Any]]]:
    return {"errors": [error.as_dict() for error in errors]}


def _flatten_drf_detail(detail: Any, field: str | None = None) -> list[ErrorDetail]:
    """Turn DRF's nested ValidationError detail into flat field errors (`a.b` paths)."""
    if isinstance(detail, dict):
        errors: list[ErrorDetail] = []
        for key, value in detail.items():
            name = None if key == "non_field_errors" else str(key)
            path = f"{field}.{name}" if field and name else (name or field)
            errors.extend(_flatten_drf_detail(value, path))
        return errors
    if isinstance(detail, list):
        return [error for item in detail for error in _flatten_drf_detail(item, field)]
    code = getattr(detail, "code", None) or "invalid"
    return [ErrorDetail(code=str(code), message=str(detail), field=field)]


def _api_exception_error(exc: exceptions.APIException) -> ErrorDetail:
    code = exc.get_codes()
    return ErrorDetail(code=code if isinstance(code, str) else "error", message=str(exc.detail))


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, ApiError):
        return Response(error_body(exc.errors), status=exc.status_code)
    response = exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        errors = _flatten_drf_detail(exc.detail)
    elif isinstance(exc, exceptions.APIException):
        errors = [_api_exception_error(exc)]
    else:  # Http404 and PermissionDenied from Django, mapped by DRF
        errors = [
            ErrorDetail(
                code="not_found" if response.status_code == 404 else "error",
                message=str(response.data.get("detail", "")),
            )
        ]
    response.data = error_body(errors)
    return response


def json_error_response(status_code: int, code: str, message: str) -> JsonResponse:
    return JsonResponse(error_body([ErrorDetail(code=code, message=message)]), status=status_code)


def handler404(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    return json_error_response(status.HTTP_404_NOT_FOUND, "not_found", "No such resource.")


def handler500(request: HttpRequest) -> JsonResponse:
    return json_error_response(
        status.HTTP_500_INTERNAL_SERVER_ERROR, "server_error", "Internal server error."
    )
