"""Prices edited in the admin pass the loader's checks, so rating can always bill them, and
a version an invoice used is never edited in place."""

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.forms import MultiWidget

from billing.invoicing.models import Invoice
from billing.invoicing.services import period_close
from billing.plans.forms import OutcomePriceForm
from billing.plans.models import PlanVersion, Subscription
from billing.plans.schemas import DimensionMarkupDoc, DimensionPriceDoc, TierDoc
from billing.plans.selectors import plan_document
from tests.billing.factories import plan_load
from tests.metering.factories import customer_create

pytestmark = pytest.mark.django_db

OCTOBER = datetime(2026, 10, 1, tzinfo=UTC)


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


def test_the_new_charge_models_are_accepted():
    version = plan_load("p")
    by_channel = '[{"value": "voice", "unit_price": "1.49"}]'
    assert form(
        version, unit_price="0.99", dimension="channel", dimension_prices=by_channel
    ).is_valid()
    assert form(
        version, model="percentage", percentage="2", fixed_fee="0.25", free_value="1000"
    ).is_valid()
    # A graduated percentage: its tiers (edited on the price's page) carry the rates.
    assert form(version, model="percentage", tier_mode="graduated").is_valid()


@pytest.mark.parametrize(
    "fields",
    [
        {},  # no unit price, no tiers, no percentage
        {"unit_price": "-1"},
        {"model": "percentage"},  # without its percentage
        {"model": "percentage", "percentage": "5", "floor": "60", "cap": "50"},
        {"unit_price": "1", "floor": "1"},  # floor belongs to a percentage price
        {"tier_mode": "volume", "unit_price": "1"},  # tiers carry their own prices
        {"unit_price": "1", "fixed_fee": "0.25"},  # a fixed fee belongs to a percentage
        # By dimension: without the price of any other value, without prices, not JSON.
        {"dimension": "channel", "dimension_prices": '[{"value": "chat", "unit_price": "1"}]'},
        {"unit_price": "1", "dimension": "channel"},
        {"unit_price": "1", "dimension": "channel", "dimension_prices": '[{"value": 1}]'},
    ],
)
def test_a_price_rating_could_not_bill_is_refused(fields):
    version = plan_load("p")
    assert not form(version, **fields).is_valid()


def change_form_data(response) -> dict[str, object]:
    """What the admin's change page would post back unchanged: its form's and inlines'
    values, with their management forms."""
    context = response.context
    forms = [context["adminform"].form]
    for inline in context["inline_admin_formsets"]:
        forms += [inline.formset.management_form, *inline.formset.forms]
    data: dict[str, object] = {}
    for form in forms:
        for name, field in form.fields.items():
            value = form[name].value()
            if value is None or value is False:
                continue
            # A field with a callable default also posts its initial value back, hidden.
            keys = [form.add_prefix(name)]
            if field.show_hidden_initial:
                keys.append(form.add_initial_prefix(name))
            for key in keys:
                if isinstance(field.widget, MultiWidget):  # a date and a time, say
                    parts = field.widget.decompress(value)
                    for suffix, part in zip(field.widget.widgets_names, parts, strict=True):
                        data[key + suffix] = part
                else:
                    data[key] = ",".join(value) if isinstance(value, list) else value
    return data


@pytest.fixture
def billed_version(db):
    version = plan_load(
        "support-ai",
        outcomes=[{"type": "resolution", "unit_price": "0.99"}],
        token_pass_through=[{"feature": "", "markup": "0.2"}],
    )
    customer = customer_create(external_id="acme")
    Subscription.objects.create(customer=customer, plan=version.plan, started_at=OCTOBER)
    period_close(customer_id=customer.pk, period_start=OCTOBER)
    return version


def test_editing_a_billed_version_in_the_admin_makes_a_new_version(staff_client, billed_version):
    url = f"/admin/plans/planversion/{billed_version.pk}/change/"
    data = change_form_data(staff_client.get(url))
    data["outcome_prices-0-unit_price"] = "1.10"
    data["base_fee"] = "5"
    data["_continue"] = "Save and continue editing"

    response = staff_client.post(url, data)

    assert response.status_code == 302, response.context and response.context["errors"]
    billed_version.refresh_from_db()
    assert billed_version.base_fee == 0  # the billed version is as it was
    assert billed_version.outcome_prices.get().unit_price == Decimal("0.99")
    new = PlanVersion.objects.get(plan=billed_version.plan, version=2)
    assert new.base_fee == 5 and new.outcome_prices.get().unit_price == Decimal("1.10")
    assert new.pass_throughs.get().markup == Decimal("0.2")
    assert Invoice.objects.get().plan_version_id == billed_version.pk
    assert response["Location"] == f"/admin/plans/planversion/{new.pk}/change/"


def test_an_unbilled_version_is_edited_in_place(staff_client):
    version = plan_load("draft-plan", outcomes=[{"type": "resolution", "unit_price": "0.99"}])
    url = f"/admin/plans/planversion/{version.pk}/change/"
    data = change_form_data(staff_client.get(url))
    data["base_fee"] = "7"

    assert staff_client.post(url, data).status_code == 302

    version.refresh_from_db()
    assert version.base_fee == 7
    assert PlanVersion.objects.filter(plan=version.plan).count() == 1


def test_the_admin_refuses_pass_through_on_a_plan_not_in_usd(staff_client, billed_version):
    url = f"/admin/plans/planversion/{billed_version.pk}/change/"
    data = change_form_data(staff_client.get(url))
    data["currency"] = "EUR"

    response = staff_client.post(url, data)

    assert response.status_code == 200  # the form again, with the error
    assert "needs a USD plan" in response.content.decode()
    assert PlanVersion.objects.filter(plan=billed_version.plan).count() == 1


def test_a_bad_currency_is_refused_in_the_admin(staff_client):
    version = plan_load("draft-plan")
    url = f"/admin/plans/planversion/{version.pk}/change/"
    data = change_form_data(staff_client.get(url))
    data["currency"] = "XYZ"

    response = staff_client.post(url, data)

    assert response.status_code == 200
    assert "XYZ is not an ISO 4217 currency" in response.content.decode()


def test_the_prices_of_a_billed_version_cannot_be_changed_on_their_own_page(
    staff_client, billed_version
):
    price = billed_version.outcome_prices.get()
    url = f"/admin/plans/outcomeprice/{price.pk}/change/"

    assert staff_client.post(url, {"unit_price": "5"}).status_code == 403
    price.refresh_from_db()
    assert price.unit_price == Decimal("0.99")


def test_the_admin_keeps_how_invoiced_periods_run(staff_client, billed_version):
    subscription = Subscription.objects.get()
    url = f"/admin/plans/subscription/{subscription.pk}/change/"
    data = change_form_data(staff_client.get(url))
    data["billing_anchor_day"] = 15

    response = staff_client.post(url, data)

    assert response.status_code == 200  # the form again, with the error
    assert response.context["adminform"].form.errors == {
        "billing_anchor_day": ["acme has invoiced periods: changing `billing_anchor_day` would "
                               "move them."]
    }  # fmt: skip
    assert Subscription.objects.get().billing_anchor_day == 1
    data["billing_anchor_day"] = 1
    data["premium_seats"] = 3  # what may change
    assert staff_client.post(url, data).status_code == 302


def test_a_new_version_made_in_the_admin_keeps_every_charge_model_as_written(staff_client):
    """Tiers are edited on their price's own page, and prices by a property and markups by
    one are JSON in the form: a new version made from the version's page keeps them all
    as stored (bounds, flat fees, percentages, each value's price and markup)."""
    version = plan_load(
        "every-model",
        outcomes=[
            {"type": "resolution", "tier_mode": "graduated",
             "tiers": [{"up_to": 100, "unit_price": "1", "flat_fee": "20"}, {"flat_fee": "50"}]},
            {"type": "deal", "tier_mode": "graduated",
             "tiers": [{"up_to": 10000, "percentage": "5", "flat_fee": "10"},
                       {"percentage": "3"}]},
            {"type": "ticket", "dimension": "channel", "unit_price": "0.99",
             "prices": [{"value": "voice", "unit_price": "1.49"}]},
        ],
        token_pass_through=[{"feature": "", "markup": "0.1", "dimension": "model",
                             "markups": [{"value": "gpt-4o", "markup": "0.5"}]}],
    )  # fmt: skip
    customer = customer_create(external_id="every-model")
    Subscription.objects.create(customer=customer, plan=version.plan, started_at=OCTOBER)
    period_close(customer_id=customer.pk, period_start=OCTOBER)
    url = f"/admin/plans/planversion/{version.pk}/change/"
    data = change_form_data(staff_client.get(url))
    data["base_fee"] = "5"

    response = staff_client.post(url, data)

    assert response.status_code == 302, response.context and response.context["errors"]
    new = PlanVersion.objects.get(plan=version.plan, version=2)
    before, after = plan_document(version), plan_document(new)
    assert after.base_fee == 5
    assert (
        after.outcomes == before.outcomes and after.token_pass_through == before.token_pass_through
    )
    tiers = {price.type: price.tiers for price in after.outcomes}
    assert tiers["resolution"] == [
        TierDoc(unit_price=Decimal("1"), up_to=100, flat_fee=Decimal("20")),
        TierDoc(flat_fee=Decimal("50")),
    ]
    assert tiers["deal"] == [
        TierDoc(up_to=10000, flat_fee=Decimal("10"), percentage=Decimal("5")),
        TierDoc(percentage=Decimal("3")),
    ]
    [ticket] = [price for price in after.outcomes if price.type == "ticket"]
    assert (ticket.dimension, ticket.prices) == (
        "channel",
        [DimensionPriceDoc(value="voice", unit_price=Decimal("1.49"))],
    )
    [markup] = after.token_pass_through
    assert (markup.dimension, markup.markups) == (
        "model",
        [DimensionMarkupDoc(value="gpt-4o", markup=Decimal("0.5"))],
    )
