"""Prices edited in the admin pass the loader's checks, so rating can always bill them."""

from decimal import Decimal

import pytest

from billing.forms import OutcomePriceForm
from tests.billing.factories import plan_load

pytestmark = pytest.mark.django_db


def form(version, **fields):
    data = {
        "plan_version": version.pk,
        "outcome_type": "resolution",
        "model": "unit",
        "included_quantity": 0,
        "tier_mode": "none",
        **fields,
    }
    return OutcomePriceForm(data={k: v for k, v in data.items() if v is not None})


def test_a_flat_price_is_accepted():
    version = plan_load("p")
    assert form(version, unit_price=Decimal("0.99")).is_valid()


@pytest.mark.parametrize(
    "fields",
    [
        {},  # no unit price, no tiers, no percentage
        {"unit_price": "-1"},
        {"model": "percentage"},  # without its percentage
        {"model": "percentage", "percentage": "5", "floor": "60", "cap": "50"},
        {"unit_price": "1", "floor": "1"},  # floor belongs to a percentage price
        {"tier_mode": "volume", "unit_price": "1"},  # tiers carry their own prices
    ],
)
def test_a_price_rating_could_not_bill_is_refused(fields):
    version = plan_load("p")
    assert not form(version, **fields).is_valid()
