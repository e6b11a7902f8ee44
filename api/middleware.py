import io
import logging
import re
import uuid
import zlib
from collections.abc import Callable

import psycopg
from django.conf import settings
from django.db import InterfaceError, OperationalError, connections
from django.http import HttpRequest, HttpResponse

from api.errors import json_error_response
from common.request_id import REQUEST_ID


class BodySizeLimitMiddleware:
    """Answer 413 before reading a body larger than API_MAX_BODY_BYTES (and 400 for a
    path or query with U+0000).

    Django would raise RequestDataTooBig only once a view touches `request.body`, and with
    an HTML page; the API promises a JSON error and wants to refuse before buffering.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self.limit = settings.API_MAX_BODY_BYTES

    def __call__(self, request: HttpRequest) -> HttpResponse:
        # PostgreSQL cannot compare or store U+0000: a path or query holding it names
        # nothing payback has, and is refused here rather than failing in a query.
        if (
            "\x00" in request.path
            or "\x00" in request.META.get("QUERY_STRING", "")
            or any("\x00" in value for values in request.GET.lists() for value in values[1])
        ):
            return json_error_response(
                400, "invalid_characters", "The path or query holds the character U+0000."
            )
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


class RequestDecompressionMiddleware:
    """Accept request bodies sent with `Content-Encoding: gzip`, and say so.

    A backend sending batches of 1,000 events saves most of its bandwidth by compressing
    them (the SDK does once it is told it may). Every API answer carries
    `Accept-Encoding: gzip`, which is how a server advertises the request encodings it
    takes (RFC 7694); a body in another encoding gets 415 with the same header. After the
    body size limit, which holds for what was sent; what it inflates to is held to the
    same limit, so a small bomb is a 413 too. The view reads the inflated body as if it
    had been sent so."""

    ACCEPTED = "gzip"

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self.limit = settings.API_MAX_BODY_BYTES

    def __call__(self, request: HttpRequest) -> HttpResponse:
        encoding = request.headers.get("Content-Encoding", "").strip().lower()
        if encoding not in ("", "identity"):
            if encoding == self.ACCEPTED:
                refused = self._inflate(request)
            else:
                refused = json_error_response(
                    415,
                    "unsupported_content_encoding",
                    f"Content-Encoding `{encoding}` is not accepted: send `gzip` or none.",
                )
            if refused is not None:
                refused["Accept-Encoding"] = self.ACCEPTED
                return refused
        response = self.get_response(request)
        response["Accept-Encoding"] = self.ACCEPTED
        return response

    def _inflate(self, request: HttpRequest) -> HttpResponse | None:
        inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)  # gzip's header and trailer
        try:
            body = inflater.decompress(request.body, self.limit + 1)
            complete = inflater.eof and not inflater.unused_data
        except zlib.error:
            body, complete = b"", False
        if len(body) > self.limit:
            return json_error_response(
                413,
                "body_too_large",
                f"Request body inflates to more than the limit of {self.limit} bytes.",
            )
        if not complete:
            return json_error_response(
                400, "invalid_gzip", "The body is not one complete gzip stream."
            )
        # Django keeps a read body in `_body` and reads it again from `_stream` (what DRF's
        # parsers use): both now hold the inflated body, as if it had been sent so.
        request._body = body  # type: ignore[attr-defined]
        request._stream = io.BytesIO(body)  # type: ignore[attr-defined]
        request.META["CONTENT_LENGTH"] = str(len(body))
        del request.META["HTTP_CONTENT_ENCODING"]
        return None


logger = logging.getLogger(__name__)
_CLIENT_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


class RequestIdMiddleware:
    """Give each request an id: the caller's X-Request-ID when it is a sane token (so a
    product backend can follow a call through), else a new one; echoed in the response
    and on every log line of the request."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        given = request.headers.get("X-Request-ID", "")
        request_id = given if _CLIENT_REQUEST_ID.match(given) else uuid.uuid4().hex
        token = REQUEST_ID.set(request_id)
        try:
            response = self.get_response(request)
        finally:
            REQUEST_ID.reset(token)
        response["X-Request-ID"] = request_id
        return response


def database_unavailable_response(exception: Exception) -> HttpResponse | None:
    """503 with Retry-After for an exception that says the database is down (Django's
    wrappers, and psycopg's own from the ingest path's raw cursors), else None.

    The client should retry, and nothing was acknowledged (every write is one
    transaction). The broken connection is dropped so that the next request reconnects."""
    if not isinstance(
        exception,
        OperationalError | InterfaceError | psycopg.OperationalError | psycopg.InterfaceError,
    ):
        return None
    for alias in connections:
        if not connections[alias].in_atomic_block:
            connections[alias].close()
    logger.warning("database unavailable: %s", exception)
    response = json_error_response(
        503, "database_unavailable", "The database is unavailable; retry shortly."
    )
    response["Retry-After"] = "5"
    return response


class DatabaseUnavailableMiddleware:
    """A request that finds the database down gets 503 with Retry-After, not a 500."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        return database_unavailable_response(exception)
