"""Files people download from payback, made safe to open."""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable
from typing import Any

# A cell a spreadsheet would run as a formula (OWASP, CSV injection), unless it is a
# plain number (a negative margin stays a number).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"^[+-]?\d+(\.\d+)?([eE][+-]?\d+)?$")


def csv_cell(value: Any) -> Any:
    """A cell as written: text that a spreadsheet would take for a formula is prefixed
    with a single quote; numbers and other text are as they are."""
    if isinstance(value, str) and value.startswith(_FORMULA_START) and not _NUMBER.match(value):
        return "'" + value
    return value


class SafeCsvWriter:
    """csv.writer whose every cell goes through csv_cell: the one way payback writes CSV."""

    def __init__(self, output: Any) -> None:
        self._writer = csv.writer(output)

    def writerow(self, row: Iterable[Any]) -> None:
        self._writer.writerow([csv_cell(cell) for cell in row])
