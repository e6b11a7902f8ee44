"""`manage.py load_plans`: price books from YAML or JSON, versioned, all or nothing."""

import json
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from billing.plans.models import OutcomePrice, Plan, PlanVersion

pytestmark = pytest.mark.django_db

GOOD = """
plans:
  - code: support-ai
    name: Support AI
    currency: USD
    outcomes:
      - type: resolution
        unit_price: 0.99
        included: 50
  - code: finance
    name: Finance
    currency: EUR
    minimum_spend: "100"
    outcomes:
      - type: invoice_negotiated
        percentage: 5
        floor: 10
        cap: 50
      - type: resolution
        tier_mode: graduated
        tiers:
          - {up_to: 1000, unit_price: 0.99}
          - {unit_price: 0.59}
"""


def load(tmp_path, text, name="plans.yaml"):
    path = tmp_path / name
    path.write_text(text)
    call_command("load_plans", str(path))


def test_a_price_book_loads_exactly(tmp_path):
    load(tmp_path, GOOD)

    resolution = OutcomePrice.objects.get(plan_version__plan__code="support-ai")
    assert str(resolution.unit_price.normalize()) == "0.99"  # a YAML number, read exactly
    assert resolution.included_quantity == 50
    tiers = OutcomePrice.objects.get(plan_version__plan__code="finance", outcome_type="resolution")
    assert [(t.up_to, str(t.unit_price.normalize())) for t in tiers.tiers.all()] == [
        (1000, "0.99"),
        (None, "0.59"),
    ]


def test_json_price_books_load_too(tmp_path):
    document = {"plans": [{"code": "j", "name": "J", "currency": "JPY",
                           "outcomes": [{"type": "r", "unit_price": 100}]}]}  # fmt: skip
    load(tmp_path, json.dumps(document), "plans.json")
    assert PlanVersion.objects.get(plan__code="j").currency == "JPY"


def test_loading_the_same_book_again_changes_nothing(tmp_path):
    load(tmp_path, GOOD)
    load(tmp_path, GOOD.replace("0.99", "0.990"))  # the same price, spelled differently
    assert PlanVersion.objects.count() == 2


def test_changed_prices_make_a_new_version_and_keep_the_old(tmp_path):
    load(tmp_path, GOOD)
    load(tmp_path, GOOD.replace("included: 50", "included: 100"))

    versions = PlanVersion.objects.filter(plan__code="support-ai").order_by("version")
    assert [v.version for v in versions] == [1, 2]
    assert [v.outcome_prices.get().included_quantity for v in versions] == [50, 100]
    assert PlanVersion.objects.filter(plan__code="finance").count() == 1


@pytest.mark.parametrize(
    ("change", "where"),
    [
        (("unit_price: 0.99\n        included", "unit_price: -1\n        included"),
         "plans[0].outcomes[0].unit_price"),
        (("currency: EUR", "currency: EUX"), "plans[1].currency"),
        (("percentage: 5", "percentage: 500"), "plans[1].outcomes[0].percentage"),
        (("floor: 10", "floor: 80"), "plans[1].outcomes[0].floor"),
        (("        tier_mode: graduated\n", ""), "plans[1].outcomes[1].tier_mode"),
        (("- {unit_price: 0.59}", "- {up_to: 9, unit_price: 0.59}"), "plans[1].outcomes[1].tiers"),
        (("- {up_to: 1000, unit_price: 0.99}", "- {up_to: 1000}"),
         "plans[1].outcomes[1].tiers[0]: needs a unit_price, a flat_fee or both"),
        (("- {unit_price: 0.59}", "- {unit_price: 0.59, flat_fee: -5}"),
         "plans[1].outcomes[1].tiers[1].flat_fee"),
        (("included: 50", "included: 50\n        fixed_fee: 1"),
         "plans[0].outcomes[0]: floor, cap, fixed_fee and free_value belong to a percentage"),
        (("floor: 10", "floor: 10\n        free_value: -1"), "plans[1].outcomes[0].free_value"),
        (("floor: 10", "floor: 10\n        fixed_fee: x"), "plans[1].outcomes[0].fixed_fee"),
        (("- {unit_price: 0.59}", "- {percentage: 3}"),
         "plans[1].outcomes[1].tiers[1].percentage: every tier has a percentage, or none"),
        (("- {up_to: 1000, unit_price: 0.99}\n          - {unit_price: 0.59}",
          "- {up_to: 1000, percentage: 150}\n          - {percentage: 3}"),
         "plans[1].outcomes[1].tiers[0].percentage: must be at least 0 and at most 100"),
        (("tier_mode: graduated\n        tiers:\n          - {up_to: 1000, unit_price: 0.99}\n"
          "          - {unit_price: 0.59}",
          "tier_mode: volume\n        tiers:\n          - {up_to: 1000, percentage: 5}\n"
          "          - {percentage: 3}"),
         "plans[1].outcomes[1].tier_mode: percentage tiers are `graduated`"),
        (("tiers:\n          - {up_to: 1000, unit_price: 0.99}\n          - {unit_price: 0.59}",
          "cap: 5\n        tiers:\n          - {up_to: 1000, percentage: 5}\n"
          "          - {percentage: 3}"),
         "plans[1].outcomes[1]: a graduated percentage has no"),
        (("included: 50", "included: 50\n        dimension: channel"),
         "plans[0].outcomes[0].prices: a dimension needs the prices of its values"),
        (("unit_price: 0.99\n        included: 50",
          "dimension: channel\n        prices: [{value: chat, unit_price: 1}]\n"
          "        included: 50"),
         "plans[0].outcomes[0].unit_price: is the price of any other value"),
        (("included: 50", "included: 50\n        prices: [{value: chat, unit_price: 1}]"),
         "plans[0].outcomes[0].dimension: name the property"),
        (("included: 50", "included: 50\n        dimension: channel\n        prices: "
          "[{value: chat, unit_price: 1}, {value: chat, unit_price: 2}]"),
         "plans[0].outcomes[0].prices[1].value: chat appears twice"),
        (("percentage: 5", "percentage: 5\n        dimension: channel\n        prices: "
          "[{value: chat, unit_price: 1}]"),
         "plans[1].outcomes[0]: a price by dimension is a unit price"),
        (("code: finance", "code: support-ai"), "plans[1].code"),
        (("included: 50", "included: 50\n        unit_pric: 2"), "plans[0].outcomes[0]"),
        (("included: 50", "included: -3"), "plans[0].outcomes[0].included"),
    ],
)  # fmt: skip
def test_a_bad_book_names_the_key_and_changes_nothing(tmp_path, change, where):
    load(tmp_path, GOOD)
    before = PlanVersion.objects.count()

    with pytest.raises(CommandError) as refused:
        load(tmp_path, GOOD.replace(*change) + "\n")

    assert where in str(refused.value)
    assert PlanVersion.objects.count() == before


def test_a_yaml_syntax_error_names_the_line(tmp_path):
    with pytest.raises(CommandError, match="line 3"):
        load(tmp_path, "plans:\n  - code: x\n   name: X\n")
    assert not Plan.objects.exists()


def test_token_pass_through_needs_a_usd_plan(tmp_path):
    book = "plans:\n  - {code: e, name: E, currency: EUR, token_pass_through: [{markup: 0.2}]}\n"
    with pytest.raises(CommandError, match=r"plans\[0\].token_pass_through"):
        load(tmp_path, book)


def test_a_bad_plan_later_in_the_book_loads_no_plan_at_all(tmp_path):
    book = GOOD.replace("currency: EUR", "currency: nope")
    with pytest.raises(CommandError):
        load(tmp_path, book)
    assert not Plan.objects.exists()


def test_plans_endpoint_lists_each_plan_at_its_current_version(tmp_path, client_with_key):
    load(tmp_path, GOOD)
    load(tmp_path, GOOD.replace("included: 50", "included: 100"))

    plans = {p["code"]: p for p in client_with_key.get("/v1/plans").json()}

    assert plans["support-ai"]["version"] == 2
    assert plans["support-ai"]["outcomes"] == [
        {"type": "resolution", "unit_price": "0.99", "included": 100}
    ]
    assert plans["finance"]["outcomes"][0]["percentage"] == "5"


def test_the_example_price_book_in_the_readme_loads(capsys):
    call_command("load_plans", str(Path(__file__).parents[2] / "billing/plans/examples/plans.yaml"))
    assert set(Plan.objects.values_list("code", flat=True)) == {
        "support-ai",
        "premium-seats",
        "finance-agent",
        "outcome-deals",
    }


def test_tiers_with_flat_fees_load_and_show_in_the_plans_endpoint(tmp_path, client_with_key):
    book = GOOD.replace("- {unit_price: 0.59}", "- {unit_price: 0.59, flat_fee: 200}")
    load(
        tmp_path,
        book.replace("- {up_to: 1000, unit_price: 0.99}", "- {up_to: 1000, flat_fee: 49.5}"),
    )

    plans = {p["code"]: p for p in client_with_key.get("/v1/plans").json()}

    assert plans["finance"]["outcomes"][1]["tiers"] == [
        {"up_to": 1000, "flat_fee": "49.5"},
        {"unit_price": "0.59", "flat_fee": "200"},
    ]
