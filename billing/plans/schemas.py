"""The price-book document: what `manage.py load_plans` reads (YAML or JSON) and what
GET /v1/plans answers. Prices are decimal numbers or strings, read exactly: YAML and JSON
numbers become Decimal, never float."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any, Literal

import msgspec
import yaml

Slug = Annotated[str, msgspec.Meta(pattern=r"^[a-z0-9][a-z0-9_-]*$", max_length=100)]
OutcomeType = Annotated[str, msgspec.Meta(pattern=r"^[a-z0-9_.-]+$", max_length=100)]
Count = Annotated[int, msgspec.Meta(ge=0)]


class TierDoc(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """A tier: a price per unit in it, a flat fee for reaching it, or both; or, in a
    graduated percentage, a percentage of the value in it (`up_to` a value then)."""

    unit_price: Decimal | None = None
    up_to: Annotated[int, msgspec.Meta(ge=1)] | None = None
    flat_fee: Decimal | None = None
    percentage: Decimal | None = None


PropertyName = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_.-]+$", max_length=100)]


class DimensionPriceDoc(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """The unit price of outcomes whose dimension (a property) has this value."""

    value: Annotated[str, msgspec.Meta(max_length=200)]
    unit_price: Decimal


class OutcomePriceDoc(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    type: OutcomeType
    unit_price: Decimal | None = None
    percentage: Decimal | None = None
    floor: Decimal | None = None
    cap: Decimal | None = None
    fixed_fee: Decimal | None = None  # per outcome, with a percentage
    free_value: Decimal | None = None  # the period's first value not charged, with a percentage
    included: Count = 0
    tier_mode: Literal["graduated", "volume"] | None = None
    tiers: list[TierDoc] | None = None
    package_size: Annotated[int, msgspec.Meta(ge=1)] | None = None
    # A unit price by a property of the outcome: `prices` for some of its values,
    # `unit_price` for any other value (or none).
    dimension: PropertyName | None = None
    prices: list[DimensionPriceDoc] | None = None


class DimensionMarkupDoc(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """The markup of calls whose dimension (a property of the call) has this value."""

    value: Annotated[str, msgspec.Meta(max_length=200)]
    markup: Decimal


class PassThroughDoc(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    markup: Decimal
    feature: str = ""
    # A markup by a property of the call: `markups` for some of its values, `markup` for
    # any other.
    dimension: Literal["tier", "provider", "model"] | None = None
    markups: list[DimensionMarkupDoc] | None = None


class RecurringCreditDoc(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """Credits the plan gives each period: granted at its start, in the plan's currency,
    expiring at its end unless they roll over (docs/billing.md "Prepaid credits")."""

    amount: Decimal
    priority: Annotated[int, msgspec.Meta(ge=0, le=1_000_000)] = 100
    rollover: bool = False
    description: Annotated[str, msgspec.Meta(max_length=300)] = ""


class PlanDoc(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    code: Slug
    name: str
    currency: Annotated[str, msgspec.Meta(pattern=r"^[A-Z]{3}$")]
    base_fee: Decimal = Decimal(0)
    minimum_spend: Decimal | None = None
    premium_seat_fee: Decimal | None = None
    seat_mode: Literal["fixed", "active"] = "fixed"
    reversal_window_days: Count = 7
    collection_method: Literal["charge_automatically", "send_invoice"] = "send_invoice"
    days_until_due: Annotated[int, msgspec.Meta(ge=0)] = 30
    outcomes: list[OutcomePriceDoc] = msgspec.field(default_factory=list)
    token_pass_through: list[PassThroughDoc] = msgspec.field(default_factory=list)
    # AI given away with the plan (not billed): shown as cost with zero revenue.
    included_features: list[Annotated[str, msgspec.Meta(max_length=100)]] = msgspec.field(
        default_factory=list
    )
    # The margin the premium tier should keep, in percent of its seat fees.
    premium_target_margin_percent: Decimal = Decimal(0)
    # Credits granted with each period (billing/credits).
    credits: list[RecurringCreditDoc] = msgspec.field(default_factory=list)


class PriceBookDoc(msgspec.Struct, forbid_unknown_fields=True):
    plans: list[PlanDoc]


class _ExactLoader(yaml.SafeLoader):
    """YAML (and so JSON) with every float read as the Decimal it spells."""


def _decimal(loader: yaml.SafeLoader, node: yaml.Node) -> Decimal:
    return Decimal(loader.construct_scalar(node))  # type: ignore[arg-type]


_ExactLoader.add_constructor("tag:yaml.org,2002:float", _decimal)


def load_yaml_exact(text: str) -> Any:
    return yaml.load(text, Loader=_ExactLoader)  # noqa: S506 -- a SafeLoader subclass
