"""Content negotiation for an API that answers JSON only."""

from collections.abc import Sequence
from typing import Any

from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.renderers import BaseRenderer
from rest_framework.request import Request


class JsonContentNegotiation(DefaultContentNegotiation):
    """DRF's negotiation, with its answer for the Accept headers product backends send
    (none, `*/*`, or the one renderer's own type) given without parsing media types.

    Every API view has one renderer (JSON), and for these headers DRF's full negotiation
    picks it with its own media type; anything else (another type, parameters such as
    `indent`, a `?format=` override or a format suffix) goes through DRF's negotiation as
    before, so answers and 406s do not change. It runs once per request, ingest's
    included, where DRF's parsing of the header cost about a tenth of the API's own work.
    """

    def select_renderer(
        self,
        request: Request,
        renderers: Sequence[BaseRenderer],
        format_suffix: str | None = None,
    ) -> tuple[BaseRenderer, str] | Any:
        if len(renderers) == 1 and not format_suffix:
            (renderer,) = renderers
            accept = request.META.get("HTTP_ACCEPT", "")
            if accept in ("", "*/*", renderer.media_type) and (
                self.settings.URL_FORMAT_OVERRIDE not in request.query_params
            ):
                return renderer, renderer.media_type
        return super().select_renderer(request, renderers, format_suffix)
