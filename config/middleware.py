from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from config.errors import json_error_response


class BodySizeLimitMiddleware:
    """Answer 413 before reading a body larger than API_MAX_BODY_BYTES.

    Django would raise RequestDataTooBig only once a view touches `request.body`, and with
    an HTML page; the API promises a JSON error and wants to refuse before buffering.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self.limit = settings.API_MAX_BODY_BYTES

    def __call__(self, request: HttpRequest) -> HttpResponse:
        length = request.META.get("CONTENT_LENGTH") or "0"
        try:
            too_big = int(length) > self.limit
        except ValueError:
            return json_error_response(400, "invalid_content_length", "Bad Content-Length.")
        if too_big:
            return json_error_response(
                413,
                "body_too_large",
                f"Request body is larger than the limit of {self.limit} bytes.",
            )
        return self.get_response(request)
