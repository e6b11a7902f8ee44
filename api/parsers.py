"""Request parsing shared by the API views."""

from __future__ import annotations

import codecs
import json
from decimal import Decimal
from typing import Any

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser
from rest_framework.utils.json import strict_constant


class SafeJSONParser(JSONParser):
    """DRF's JSON parser (the default of every DRF view), answering 400 rather than 500 to
    a body that is not UTF-8, nests deeper than MAX_JSON_DEPTH, or holds text that is not
    Unicode (a lone surrogate escape): api.batch.json_value_check."""

    parse_float: Any = float

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        # Here, not at the top: DRF imports this module while api.errors imports DRF.
        from api.batch import json_value_check, too_deep
        from api.errors import ApiError

        encoding = (parser_context or {}).get("encoding", "utf-8")
        try:
            data = json.load(
                codecs.getreader(encoding)(stream),
                parse_float=self.parse_float,
                parse_constant=strict_constant,
            )
        except RecursionError as exc:
            raise ApiError([too_deep(None)]) from exc
        except ValueError as exc:  # UnicodeDecodeError included
            raise ParseError(f"JSON parse error - {exc}") from exc
        json_value_check(data)
        return data


class ExactJSONParser(SafeJSONParser):
    """JSON whose numbers with a fraction are read as the Decimal they spell, never as a
    float: for bodies that carry money and rates as numbers (a price book, an FX rate). A
    whole number stays an int; NaN and Infinity are refused."""

    parse_float = Decimal
