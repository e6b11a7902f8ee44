"""Currency conversion with dated rates (FxRate). A conversion that needs a rate nobody
entered answers None: a margin across currencies without a rate is unknown, not zero."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation

from django.db import transaction

from api.errors import ApiError, ErrorDetail
from billing.invoicing.models import FxRate
from billing.money import is_currency

USD = "USD"


@dataclass(frozen=True, slots=True, order=True)
class FxRateNeeded:
    """A rate nobody entered: `currency` on the day `day` (UTC)."""

    currency: str
    day: date

    def __str__(self) -> str:
        return f"{self.currency} on {self.day.isoformat()}"


class MissingFxRate(Exception):
    """Money that cannot be converted without these rates: a close waits for them rather
    than guess (or bill an outcome's value as if it had none)."""

    def __init__(self, rates: Iterable[FxRateNeeded]) -> None:
        self.rates = sorted(set(rates))
        super().__init__("missing FX rates: " + ", ".join(map(str, self.rates)))


def usd_per_unit(*, currency: str, at: datetime) -> Decimal | None:
    if currency == USD:
        return Decimal(1)
    return (
        FxRate.objects.filter(currency=currency, effective_from__lte=at)
        .order_by("-effective_from")
        .values_list("usd_per_unit", flat=True)
        .first()
    )


def fx_convert(*, amount: Decimal, source: str, target: str, at: datetime) -> Decimal | None:
    """`amount` of `source` in `target` at the rates valid at `at`; None without a rate.
    Exact to 12 decimals: rounding to minor units is the caller's, once."""
    if source == target:
        return amount
    source_rate, target_rate = (
        usd_per_unit(currency=source, at=at),
        usd_per_unit(currency=target, at=at),
    )
    if source_rate is None or target_rate is None:
        return None
    return (amount * source_rate / target_rate).quantize(Decimal("1e-12"))


def fx_rate_create(
    *, currency: str, effective_from: datetime, usd_per_unit: Decimal
) -> tuple[FxRate, bool]:
    """Add a rate (the API's create); the same rate again is a duplicate (False). Another
    rate for the same currency and moment is refused (409): a rate closes may have
    converted with is not changed over the API (the admin and the CSV loader can)."""
    with transaction.atomic():
        rate, created = FxRate.objects.get_or_create(
            currency=currency,
            effective_from=effective_from,
            defaults={"usd_per_unit": usd_per_unit},
        )
    if not created and rate.usd_per_unit != usd_per_unit:
        raise ApiError(
            [
                ErrorDetail(
                    field="usd_per_unit",
                    code="conflict",
                    message=f"{currency} from {effective_from.isoformat()} is "
                    f"{rate.usd_per_unit.normalize():f} USD already; add a rate from a later "
                    "moment instead.",
                )
            ],
            status_code=409,
        )
    return rate, created


class FxFileError(Exception):
    pass


def fx_rates_load(*, text: str) -> int:
    """Load rates from CSV (`currency,effective_from,usd_per_unit`, a header line first),
    all or nothing; raises FxFileError naming the line. Returns how many rates are new or
    changed; loading the same file again changes nothing."""
    reader = csv.DictReader(io.StringIO(text))
    expected = {"currency", "effective_from", "usd_per_unit"}
    if set(reader.fieldnames or ()) != expected:
        raise FxFileError(f"line 1: the columns must be {', '.join(sorted(expected))}")
    rows = []
    for line, row in enumerate(reader, start=2):
        currency = (row["currency"] or "").strip().upper()
        if not is_currency(currency) or currency == USD:
            raise FxFileError(
                f"line {line}: currency {row['currency']!r} is not an ISO 4217 code other than USD"
            )
        try:
            effective_from = datetime.fromisoformat(row["effective_from"].strip())
        except ValueError:
            raise FxFileError(
                f"line {line}: effective_from {row['effective_from']!r} is not ISO 8601"
            ) from None
        if effective_from.tzinfo is None:
            raise FxFileError(f"line {line}: effective_from needs a UTC offset")
        try:
            rate = Decimal(row["usd_per_unit"].strip())
        except InvalidOperation:
            raise FxFileError(
                f"line {line}: usd_per_unit {row['usd_per_unit']!r} is not a number"
            ) from None
        if not rate.is_finite() or rate <= 0:
            raise FxFileError(f"line {line}: usd_per_unit must be above 0")
        rows.append((currency, effective_from, rate))
    changed = 0
    with transaction.atomic():
        for currency, effective_from, rate in rows:
            stored, created = FxRate.objects.get_or_create(
                currency=currency, effective_from=effective_from, defaults={"usd_per_unit": rate}
            )
            if created:
                changed += 1
            elif stored.usd_per_unit != rate:
                stored.usd_per_unit = rate
                stored.save(update_fields=["usd_per_unit"])
                changed += 1
    return changed
