"""Writes of plans: price books (loaded from documents), subscriptions, and
customers with their plan."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import msgspec
from django.db import transaction
from django.utils import timezone

from api.errors import ApiError, ErrorDetail
from billing.money import is_currency, minor_unit_digits
from billing.plans.models import (
    OutcomePrice,
    Plan,
    PlanChange,
    PlanVersion,
    PriceTier,
    SeatChange,
    Subscription,
    TierMode,
    TokenPassThrough,
)
from billing.plans.periods import subscription_period
from billing.plans.schemas import OutcomePriceDoc, PlanDoc, PriceBookDoc, TierDoc
from billing.plans.selectors import (
    plan_document,
    plan_in_effect,
    plan_version_current,
    price_model,
    seats_at,
)
from metering.models import Customer
from metering.services import customer_upsert


class PriceBookError(Exception):
    """A price book that cannot be loaded; `where` names the key (plans[0].outcomes[1])."""

    def __init__(self, where: str, message: str) -> None:
        super().__init__(f"{where}: {message}" if where else message)
        self.where = where
        self.message = message


def _non_negative(where: str, **amounts: Decimal | None) -> None:
    for name, amount in amounts.items():
        if amount is not None and (not amount.is_finite() or amount < 0):
            raise PriceBookError(f"{where}.{name}", "must be a number >= 0")


def tiers_check(where: str, tiers: list[TierDoc]) -> None:
    bounds = [tier.up_to for tier in tiers]
    if not bounds or bounds[-1] is not None or None in bounds[:-1]:
        raise PriceBookError(where, "only the last tier has no up_to")
    if bounds[:-1] != sorted(set(bounds[:-1])):  # type: ignore[type-var]
        raise PriceBookError(where, "up_to must increase from tier to tier")
    by_value = tiers[0].percentage is not None  # a graduated percentage
    for index, tier in enumerate(tiers):
        here = f"{where}[{index}]"
        if (tier.percentage is not None) != by_value:
            raise PriceBookError(
                f"{here}.percentage", "every tier has a percentage, or none (not a mix)"
            )
        if by_value:
            if tier.unit_price is not None:
                raise PriceBookError(f"{here}.unit_price", "a percentage tier has no unit_price")
            if not (0 <= tier.percentage <= 100):  # type: ignore[operator]
                raise PriceBookError(f"{here}.percentage", "must be at least 0 and at most 100")
        elif tier.unit_price is None and tier.flat_fee is None:
            raise PriceBookError(here, "needs a unit_price, a flat_fee or both")
        _non_negative(here, unit_price=tier.unit_price, flat_fee=tier.flat_fee)


def outcome_price_check(where: str, price: OutcomePriceDoc, *, tiers_apart: bool = False) -> None:
    """Raise PriceBookError for a price that rating could not bill. `tiers_apart`: the
    tiers are edited elsewhere (the admin), so only the price's own fields are checked."""
    _non_negative(
        where,
        unit_price=price.unit_price,
        floor=price.floor,
        cap=price.cap,
        fixed_fee=price.fixed_fee,
        free_value=price.free_value,
    )
    if price.dimension is not None or price.prices is not None:
        _dimension_check(where, price)
        return
    if price.percentage is not None:
        if price.unit_price is not None or price.tiers or price.package_size:
            raise PriceBookError(
                where, "a percentage price has no unit_price, tiers or package_size"
            )
        if not (0 < price.percentage <= 100):
            raise PriceBookError(f"{where}.percentage", "must be above 0 and at most 100")
        if price.floor is not None and price.cap is not None and price.floor > price.cap:
            raise PriceBookError(f"{where}.floor", "is above the cap")
        return
    if price.tiers and price.tiers[0].percentage is not None:
        if price.tier_mode != TierMode.GRADUATED:
            raise PriceBookError(f"{where}.tier_mode", "percentage tiers are `graduated`")
        if any(
            value is not None
            for value in (
                price.unit_price,
                price.package_size,
                price.floor,
                price.cap,
                price.fixed_fee,
                price.free_value,
            )
        ):
            raise PriceBookError(
                where,
                "a graduated percentage has no unit_price, package_size, floor, cap, "
                "fixed_fee or free_value (a first tier at 0 % is a free value)",
            )
        tiers_check(f"{where}.tiers", price.tiers)
        return
    if any(v is not None for v in (price.floor, price.cap, price.fixed_fee, price.free_value)):
        raise PriceBookError(
            where, "floor, cap, fixed_fee and free_value belong to a percentage price"
        )
    if tiers_apart and price.tier_mode is not None:
        if price.unit_price is not None or price.package_size:
            raise PriceBookError(
                where, "tiers carry their own prices: no unit_price or package_size"
            )
        return
    if price.tiers:
        if price.tier_mode is None:
            raise PriceBookError(f"{where}.tier_mode", "say `graduated` or `volume` with tiers")
        if price.unit_price is not None or price.package_size:
            raise PriceBookError(
                where, "tiers carry their own prices: no unit_price or package_size"
            )
        tiers_check(f"{where}.tiers", price.tiers)
        return
    if price.tier_mode is not None:
        raise PriceBookError(f"{where}.tiers", f"tier_mode {price.tier_mode} needs tiers")
    if price.unit_price is None:
        raise PriceBookError(where, "needs a unit_price, tiers, or a percentage")


def _dimension_check(where: str, price: OutcomePriceDoc) -> None:
    """A unit price by a property of the outcome: prices for some values, and the price
    of any other (unit_price), so that an unknown value is never free nor an error."""
    if price.dimension is None:
        raise PriceBookError(f"{where}.dimension", "name the property the prices are by")
    if not price.prices:
        raise PriceBookError(f"{where}.prices", "a dimension needs the prices of its values")
    others = (price.percentage, price.tiers, price.tier_mode, price.package_size, price.floor,
              price.cap, price.fixed_fee, price.free_value)  # fmt: skip
    if any(value is not None for value in others):
        raise PriceBookError(
            where, "a price by dimension is a unit price: no percentage, tiers or package_size"
        )
    if price.unit_price is None:
        raise PriceBookError(
            f"{where}.unit_price", "is the price of any other value of the dimension: say it"
        )
    _values_check(
        f"{where}.prices",
        [(group.value, {"unit_price": group.unit_price}) for group in price.prices],
    )


def _values_check(where: str, groups: list[tuple[str, dict[str, Decimal]]]) -> None:
    """The values a dimension's prices or markups name, with their amounts: each value
    once and not empty, each amount non-negative. Rating, the statement and authorize
    count outcomes and calls of any value not named (or none) under "", so a named ""
    would price the same outcomes twice."""
    seen: set[str] = set()
    for index, (value, amounts) in enumerate(groups):
        here = f"{where}[{index}]"
        if value == "":
            raise PriceBookError(
                f"{here}.value", "is empty: what has no value pays the price of any other"
            )
        if value in seen:
            raise PriceBookError(f"{here}.value", f"{value} appears twice")
        seen.add(value)
        _non_negative(here, **amounts)


def plan_check(where: str, plan: PlanDoc) -> None:
    """Raise PriceBookError for a plan rating could not bill: the loader's checks, which
    the admin and the API apply too. `where` prefixes the key named."""
    _check_plan(where, plan)


def _check_plan(where: str, plan: PlanDoc) -> None:
    if not is_currency(plan.currency):
        raise PriceBookError(f"{where}.currency", f"{plan.currency} is not an ISO 4217 currency")
    _non_negative(
        where,
        base_fee=plan.base_fee,
        minimum_spend=plan.minimum_spend,
        premium_seat_fee=plan.premium_seat_fee,
    )
    seen: set[str] = set()
    for index, price in enumerate(plan.outcomes):
        if price.type in seen:
            raise PriceBookError(f"{where}.outcomes[{index}].type", f"{price.type} appears twice")
        seen.add(price.type)
        outcome_price_check(f"{where}.outcomes[{index}]", price)
    if plan.token_pass_through and plan.currency != "USD":
        # Inference cost is USD; billing it in another currency needs FX rates (later).
        raise PriceBookError(f"{where}.token_pass_through", "needs a USD plan until FX rates exist")
    features = [p.feature for p in plan.token_pass_through]
    if len(features) != len(set(features)):
        raise PriceBookError(f"{where}.token_pass_through", "a feature appears twice")
    for index, pass_through in enumerate(plan.token_pass_through):
        here = f"{where}.token_pass_through[{index}]"
        _non_negative(here, markup=pass_through.markup)
        if (pass_through.dimension is None) != (not pass_through.markups):
            raise PriceBookError(
                here, "a dimension and its markups go together (markup: any other value)"
            )
        _values_check(
            f"{here}.markups",
            [(group.value, {"markup": group.markup}) for group in pass_through.markups or []],
        )
    if not (0 <= plan.premium_target_margin_percent < 100):
        raise PriceBookError(
            f"{where}.premium_target_margin_percent", "must be at least 0 and below 100"
        )
    for index, credit in enumerate(plan.credits):
        digits = minor_unit_digits(plan.currency)
        if credit.amount <= 0 or credit.amount != credit.amount.quantize(
            Decimal(1).scaleb(-digits)
        ):
            raise PriceBookError(
                f"{where}.credits[{index}].amount",
                f"must be above 0, in whole minor units of {plan.currency} ({digits} places)",
            )
    billed_at_cost = set(features) & set(plan.included_features)
    if billed_at_cost:
        raise PriceBookError(
            f"{where}.included_features",
            f"{', '.join(sorted(billed_at_cost))} is billed by token pass-through, not included",
        )


def price_book_parse(document: Any) -> list[PlanDoc]:
    """Check a price book (already read from YAML or JSON); raise PriceBookError naming
    the first bad key."""
    try:
        book = msgspec.convert(document, PriceBookDoc, strict=False)
    except msgspec.ValidationError as exc:
        text = str(exc)
        where = text.rsplit(" - at `$", 1)[1].rstrip("`").lstrip(".") if " - at `$" in text else ""
        raise PriceBookError(where, text.split(" - at ")[0]) from exc
    seen: set[str] = set()
    for index, plan in enumerate(book.plans):
        if plan.code in seen:
            raise PriceBookError(f"plans[{index}].code", f"{plan.code} appears twice")
        seen.add(plan.code)
        _check_plan(f"plans[{index}]", plan)
    return book.plans


def plan_canonical(plan: PlanDoc) -> Any:
    """A plan document as plain data with one spelling per meaning (sorted lists, decimals
    normalised, empty values left out): two documents with equal canonical forms are the
    same prices."""

    def canonical(value: Any) -> Any:
        if isinstance(value, Decimal):
            return str(value.normalize())
        if isinstance(value, msgspec.Struct):
            fields = {name: canonical(getattr(value, name)) for name in value.__struct_fields__}
            return {name: v for name, v in fields.items() if v not in (None, [], "0")}
        if isinstance(value, list):
            return [canonical(item) for item in value]
        return value

    data = canonical(plan)
    data["outcomes"] = sorted(data.get("outcomes", []), key=lambda o: o["type"])
    if "included_features" in data:
        data["included_features"] = sorted(set(data["included_features"]))
    data["token_pass_through"] = sorted(
        data.get("token_pass_through", []), key=lambda p: p.get("feature", "")
    )
    return data


def _plan_version_create(plan: Plan, doc: PlanDoc, version: int) -> PlanVersion:
    created = PlanVersion.objects.create(
        plan=plan,
        version=version,
        currency=doc.currency,
        base_fee=doc.base_fee,
        minimum_spend=doc.minimum_spend,
        premium_seat_fee=doc.premium_seat_fee,
        seat_mode=doc.seat_mode,
        reversal_window_days=doc.reversal_window_days,
        collection_method=doc.collection_method,
        days_until_due=doc.days_until_due,
        included_features=sorted(doc.included_features),
        premium_target_margin_percent=doc.premium_target_margin_percent,
        recurring_credits=[
            {
                "amount": str(credit.amount),
                "priority": credit.priority,
                "rollover": credit.rollover,
                "description": credit.description,
            }
            for credit in doc.credits
        ],
    )
    for price in doc.outcomes:
        outcome_price = OutcomePrice.objects.create(
            plan_version=created,
            outcome_type=price.type,
            model=price_model(price),
            unit_price=price.unit_price,
            percentage=price.percentage,
            floor=price.floor,
            cap=price.cap,
            fixed_fee=price.fixed_fee,
            free_value=price.free_value,
            included_quantity=price.included,
            tier_mode=price.tier_mode or TierMode.NONE,
            package_size=price.package_size,
            dimension=price.dimension or "",
            dimension_prices=[
                {"value": group.value, "unit_price": str(group.unit_price)}
                for group in price.prices or []
            ],
        )
        PriceTier.objects.bulk_create(
            PriceTier(
                outcome_price=outcome_price,
                up_to=t.up_to,
                unit_price=t.unit_price,
                flat_fee=t.flat_fee,
                percentage=t.percentage,
            )
            for t in price.tiers or []
        )
    TokenPassThrough.objects.bulk_create(
        TokenPassThrough(
            plan_version=created,
            feature=p.feature,
            markup=p.markup,
            dimension=p.dimension or "",
            dimension_markups=[
                {"value": group.value, "markup": str(group.markup)} for group in p.markups or []
            ],
        )
        for p in doc.token_pass_through
    )
    return created


def plan_version_billed(*, version_id: int | None) -> bool:
    """Whether an invoice was rated on this version: then it is never edited in place."""
    return (
        version_id is not None
        and PlanVersion.objects.filter(pk=version_id, invoices__isnull=False).exists()
    )


def plan_version_revise(*, plan: Plan, document: PlanDoc) -> LoadedPlan:
    """A plan edited as a whole (the admin's edit of a billed version): checked as a
    loaded price book is, and made a new version when it differs from the current one."""
    plan_check("", document)
    return plans_load(document={"plans": [msgspec.to_builtins(document)]})[0]


@dataclass(frozen=True, slots=True)
class LoadedPlan:
    code: str
    version: int
    changed: bool  # False: the document matched the current version; nothing was written


def plans_load(*, document: Any) -> list[LoadedPlan]:
    """Load a price book, all or nothing: a plan whose prices differ from its current
    version gets a new version; an unchanged plan is left alone."""
    plans = price_book_parse(document)
    loaded = []
    with transaction.atomic():
        for doc in plans:
            plan, _ = Plan.objects.select_for_update().get_or_create(
                code=doc.code, defaults={"name": doc.name}
            )
            if plan.name != doc.name:
                plan.name = doc.name
                plan.save(update_fields=["name"])
            current = plan_version_current(plan_id=plan.pk)
            if current is not None and plan_canonical(plan_document(current)) == plan_canonical(
                doc
            ):
                loaded.append(LoadedPlan(doc.code, current.version, changed=False))
                continue
            version = _plan_version_create(plan, doc, (current.version + 1) if current else 1)
            loaded.append(LoadedPlan(doc.code, version.version, changed=True))
    return loaded


# --- customers and subscriptions ------------------------------------------------------------


def customer_save(
    *,
    external_id: str,
    plan_code: str | None = None,
    premium_seats: int | None = None,
    periods: dict[str, Any] | None = None,
    **customer_fields: Any,
) -> tuple[Customer, bool]:
    """Create or update a customer and, when given, its plan, fixed premium seats and how
    its periods run (`periods`: started_at, billing_anchor_day, timezone)."""
    with transaction.atomic():
        customer, created = customer_upsert(external_id=external_id, **customer_fields)
        if plan_code is not None or premium_seats is not None or periods:
            subscription_set(
                customer=customer,
                plan_code=plan_code,
                premium_seats=premium_seats,
                periods=periods or {},
            )
    return customer, created


# How a subscription's periods run: fixed once one of them is invoiced.
PERIOD_FIELDS = ("started_at", "billing_anchor_day", "timezone")


def subscription_periods_refused(*, customer: Customer, changed: Any) -> dict[str, str]:
    """Of the subscription fields `changed`, those that may not change (name -> why): how
    periods run, once the customer has an invoice, since that would move invoiced
    periods. The API and the admin both ask here."""
    moved = sorted(name for name in changed if name in PERIOD_FIELDS)
    if not moved or not customer.invoices.exists():
        return {}
    return {
        name: f"{customer.external_id} has invoiced periods: changing `{name}` would move them."
        for name in moved
    }


def subscription_set(
    *,
    customer: Customer,
    plan_code: str | None,
    premium_seats: int | None,
    periods: dict[str, Any] | None = None,
) -> Subscription:
    """Subscribe the customer, or change its subscription: a plan from the next period,
    fixed seats at once. How its periods run (start, anchor day, time zone) may change
    only until its first invoice: an invoiced period is never moved."""
    periods = periods or {}
    subscription = Subscription.objects.select_for_update().filter(customer=customer).first()
    plan = Plan.objects.get(code=plan_code) if plan_code is not None else None
    if subscription is None:
        if plan is None:
            raise ApiError(
                [
                    ErrorDetail(
                        field="plan",
                        code="plan_required",
                        message="This customer has no plan yet: send `plan` too.",
                    )
                ]
            )
        return Subscription.objects.create(
            customer=customer, plan=plan, premium_seats=premium_seats or 0, **periods
        )
    changed = {
        name: value for name, value in periods.items() if getattr(subscription, name) != value
    }
    if changed:
        refused = subscription_periods_refused(customer=customer, changed=changed)
        if refused:
            raise ApiError(
                [
                    ErrorDetail(field=name, code="periods_invoiced", message=message)
                    for name, message in refused.items()
                ],
                status_code=409,
            )
        for name, value in changed.items():
            setattr(subscription, name, value)
        subscription.save(update_fields=[*changed, "updated_at"])
    now = timezone.now()
    if plan is not None:
        _, current_end = subscription_period(
            now,
            started_at=subscription.started_at,
            anchor_day=subscription.billing_anchor_day,
            timezone=subscription.timezone,
        )
        if plan.pk != plan_in_effect(subscription=subscription, moment=now):
            # From the next period: a period is billed on one plan.
            PlanChange.objects.update_or_create(
                subscription=subscription, effective_from=current_end, defaults={"plan": plan}
            )
        else:  # back to the current plan: a pending change is called off
            PlanChange.objects.filter(subscription=subscription, effective_from__gt=now).delete()
    if premium_seats is not None and premium_seats != seats_at(
        subscription=subscription, moment=now
    ):
        SeatChange.objects.create(subscription=subscription, seats=premium_seats, effective_at=now)
    return subscription
