"""Two request pipelines, each with its own middleware list: the API's and the admin's.

The API (every /v1/ route but the docs) is for product backends with an API key: it needs
a request id, metrics, security headers, the body limit and the 503 for a database
outage, and nothing of the admin's (sessions, CSRF, users, messages, frame options, the
audit log's actor, login lockout, static files). Django builds one middleware chain per
handler, so the API gets a handler of its own (ApiHandler, from settings.API_MIDDLEWARE)
and ApiPipelineMiddleware, first in settings.MIDDLEWARE, hands it every API request.
Everything else (the admin, the dashboard, static files, the API's docs and schema,
which open for a logged-in operator, /metrics) goes down MIDDLEWARE as usual.

Both lists are built from settings.COMMON_MIDDLEWARE, so a middleware meant for every
request is written once. Every API view, ingest included, is an ordinary view of the API
handler: same URL routing, same DRF request cycle, same error rendering.
"""

import threading
from collections.abc import Callable

from django.conf import settings
from django.core.handlers.base import BaseHandler
from django.http import HttpRequest, HttpResponse


def is_api_request(path: str) -> bool:
    """Whether `path` goes down the API's pipeline."""
    return path.startswith(settings.API_PATH_PREFIX) and not path.startswith(
        settings.API_PATHS_WITH_SESSION
    )


_building = threading.Lock()


class ApiHandler(BaseHandler):
    """Django's handler, with the API's middleware list instead of MIDDLEWARE."""

    def __init__(self) -> None:
        super().__init__()
        # BaseHandler.load_middleware reads settings.MIDDLEWARE: it is pointed at the
        # API's list for the length of the call. Handlers are built before they serve (a
        # gunicorn worker's at start-up, a test client's at its first request), never
        # while another thread builds one; the lock keeps two builds from interleaving.
        with _building:
            admin_list = settings.MIDDLEWARE
            settings.MIDDLEWARE = settings.API_MIDDLEWARE
            try:
                self.load_middleware()
            finally:
                settings.MIDDLEWARE = admin_list

    def respond(self, request: HttpRequest) -> HttpResponse:
        """The API's middleware chain and view, for a request whose handler has already
        done a handler's work around it (the URLconf, resource closers, error logging)."""
        return self._middleware_chain(request)


class ApiPipelineMiddleware:
    """First in MIDDLEWARE: an API request leaves the admin's chain here for the API's."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self.api = ApiHandler()

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if is_api_request(request.path_info):
            return self.api.respond(request)
        return self.get_response(request)
