"""Numbers for people, in the operator's locale (setting OPERATOR_LOCALE, babel): money
with its currency's minor units and grouping, percentages to one decimal, small unit
costs to four significant digits, changes against a previous window. Display only: the
figures themselves stay exact (the CSV and the API keep them), and nothing here rounds
money that is billed (that is billing/money.py's one rounding)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from babel import Locale
from babel.numbers import format_currency, format_decimal
from django.conf import settings

DASH = "—"


@dataclass(frozen=True, slots=True)
class OperatorFormat:
    locale: Locale

    @classmethod
    def configured(cls) -> OperatorFormat:
        return cls(Locale.parse(settings.OPERATOR_LOCALE))

    def money(self, amount: Decimal | None, currency: str) -> str:
        """`1,234.50 USD`-style amounts: the currency's minor units, the locale's grouping
        and currency pattern."""
        if amount is None:
            return DASH
        return format_currency(amount, currency, locale=self.locale)

    def unit_cost(self, amount: Decimal | None, currency: str) -> str:
        """A small cost (per call, per outcome): four significant digits, so that $0.004213
        does not show as $0.00."""
        if amount is None:
            return DASH
        if abs(amount) >= 1:
            return self.money(amount, currency)
        return format_currency(
            amount, currency, format="¤@@@@", locale=self.locale, currency_digits=False
        )

    def percent(self, value: Decimal | None) -> str:
        """Percentages to one decimal (`66.7 %`)."""
        if value is None:
            return DASH
        number = format_decimal(value, format="#,##0.0", locale=self.locale)
        return f"{number} %"

    def count(self, value: int | None) -> str:
        return DASH if value is None else format_decimal(value, locale=self.locale)

    def change(self, current: Decimal | int | None, previous: Decimal | int | None) -> Change:
        """How `current` moved from `previous`, in percent of it (`+12.3 %`); none when
        either is unknown or the previous was 0."""
        if current is None or previous is None or previous == 0:
            return Change(DASH, "none")
        moved = (Decimal(current) - Decimal(previous)) * 100 / abs(Decimal(previous))
        direction = "up" if moved > 0 else "down" if moved < 0 else "flat"
        sign = "+" if moved > 0 else ""
        return Change(f"{sign}{self.percent(moved)}", direction)


@dataclass(frozen=True, slots=True)
class Change:
    text: str
    direction: str  # up, down, flat, none
