"""Request parsing shared by the API views."""

from __future__ import annotations

import codecs
import json
from decimal import Decimal
from typing import Any

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser
from rest_framework.utils.json import strict_constant


class ExactJSONParser(JSONParser):
    """JSON whose numbers with a fraction are read as the Decimal they spell, never as a
    float: for bodies that carry money and rates as numbers (a price book, an FX rate). A
    whole number stays an int; NaN and Infinity are refused."""

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        encoding = (parser_context or {}).get("encoding", "utf-8")
        try:
            return json.load(
                codecs.getreader(encoding)(stream),
                parse_float=Decimal,
                parse_constant=strict_constant,
            )
        except ValueError as exc:
            raise ParseError(f"JSON parse error - {exc}") from exc
