"""The invoice preview (GET /v1/customers/{id}/usage) shows what the next close bills,
late usage and credits of earlier periods included: taken just before a close, it is the
invoice that close makes, line for line."""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from itertools import count

import pytest
from django.db import connection
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from billing.invoicing.models import Invoice
from billing.invoicing.services import period_close
from billing.plans.models import Subscription
from metering.models import UsageEvent
from outcomes.models import Outcome
from tests.billing.factories import plan_load
from tests.metering.factories import customer_create

pytestmark = pytest.mark.django_db(transaction=True)


# The preview reads what the facts add up to now from the running rollup
# (billing/invoicing/selectors/running.py), the close scans the facts: every test with
# nothing in the rollup (every call read one by one) and with every day in it.
@pytest.fixture(autouse=True, params=["read call by call", "summed in the rollup"])
def running_rollup(request) -> None:
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM invoicing_runninghorizon")
        if request.param == "summed in the rollup":
            cursor.execute(
                "INSERT INTO invoicing_runninghorizon (id, day) VALUES (1, '2027-06-01')"
            )


OCTOBER = datetime(2026, 10, 1, tzinfo=UTC)
NOVEMBER = datetime(2026, 11, 1, tzinfo=UTC)
_ids = count(1)


def preview(client, customer: str, moment: datetime) -> dict:
    response = client.get(f"/v1/customers/{customer}/usage", {"period": moment.isoformat()})
    assert response.status_code == 200, response.content
    return response.json()["invoice_preview"]


def preview_lines(body: dict) -> list[tuple]:
    return [
        (
            line["kind"],
            line["description"],
            Decimal(line["quantity"]),
            Decimal(line["unit_price"]),
            line["amount"],
            line["period_start"],
        )
        for line in body["lines"]
    ]


def invoice_lines(invoice: Invoice) -> list[tuple]:
    return [
        (
            line.kind,
            line.description,
            line.quantity,
            line.unit_price,
            line.amount,
            (line.source_invoice or invoice).period_start.isoformat().replace("+00:00", "Z"),
        )
        for line in invoice.lines.select_related("source_invoice")
    ]


def success(
    customer, at: datetime, value: str | None = None, channel: str | None = None
) -> Outcome:
    return Outcome.objects.create(
        external_id=f"o-{next(_ids)}", customer=customer, type="resolution", status="succeeded",
        occurred_at=at, succeeded_at=at, succeeded_recorded_at=timezone.now(),
        value=value, value_currency="USD" if value is not None else "",
        properties={} if channel is None else {"channel": channel},
    )  # fmt: skip


def call(customer, at: datetime, cost: str, *, user: str = "", tier: str = "") -> None:
    UsageEvent.objects.create(
        event_id=f"e-{next(_ids)}", customer=customer, timestamp=at, received_at=timezone.now(),
        cost=Decimal(cost), cost_source="explicit", end_user=user, tier=tier,
    )  # fmt: skip


def reverse(outcome: Outcome) -> None:
    Outcome.objects.filter(pk=outcome.pk).update(status="reversed", reversed_at=timezone.now())


def test_the_preview_bills_late_usage_and_credits_as_the_next_close_does(client_with_key):
    version = plan_load(
        "support-ai",
        outcomes=[{"type": "resolution", "unit_price": "0.99", "included": 1}],
        token_pass_through=[{"feature": "", "markup": "0.5"}],
    )
    customer = customer_create(external_id="acme")
    Subscription.objects.create(customer=customer, plan=version.plan, started_at=OCTOBER)
    billed = [success(customer, OCTOBER + timedelta(days=day)) for day in (1, 2, 3)]
    period_close(customer_id=customer.pk, period_start=OCTOBER)  # 2 billed, 1 included
    success(customer, OCTOBER + timedelta(days=20))  # late
    reverse(billed[0])  # a credit
    call(customer, OCTOBER + timedelta(days=30), "2.00")  # a late call
    success(customer, NOVEMBER + timedelta(days=2))  # November's own

    body = preview(client_with_key, "acme", NOVEMBER + timedelta(days=10))

    late_call = (
        "late usage from 2026-10-01 – 2026-11-01: AI usage at cost + 50 % (calls without a feature)"
    )
    assert [(line["kind"], line["description"], line["amount"]) for line in body["lines"]] == [
        ("included", "resolution: 1 outcome included", 0),
        ("late_usage", late_call, 300),
    ]
    # The late success and the reversal cancel out: October still has 2 billable successes.
    assert body["total"] == 300
    assert body["lines"][1]["period_start"] == "2026-10-01T00:00:00Z"
    november = period_close(customer_id=customer.pk, period_start=NOVEMBER)
    assert invoice_lines(november) == preview_lines(body)


@dataclass(frozen=True)
class Scenario:
    plan: dict
    # (day of October or November, value) for successes; days < 31: October.
    successes: list[tuple[int, str | None]]
    # (day, cost, premium user number or None) for calls
    calls: list[tuple[int, str, int | None]]
    # indexes into successes to reverse, and which facts come after October's close
    reversals: list[int]
    late_after: int  # facts from this index on (successes, then calls) come after the close


prices = st.sampled_from(["0", "0.5", "0.99", "3", "10"])


@st.composite
def outcome_prices(draw) -> dict:
    mode = draw(
        st.sampled_from(
            [
                "unit",
                "graduated",
                "volume",
                "package",
                "percentage",
                "graduated percentage",
                "dimension",
            ]
        )
    )
    price: dict = {"type": "resolution", "included": draw(st.integers(0, 3))}
    if mode == "unit":
        price["unit_price"] = draw(prices)
    elif mode == "package":
        price |= {"unit_price": draw(prices), "package_size": draw(st.integers(1, 4))}
    elif mode == "dimension":
        price |= {
            "unit_price": draw(prices),
            "dimension": "channel",
            "prices": [{"value": "chat", "unit_price": draw(prices)},
                       {"value": "email", "unit_price": draw(prices)}],
        }  # fmt: skip
    elif mode == "graduated percentage":
        first = {"up_to": draw(st.sampled_from([10, 100])), "percentage": draw(prices)}
        rest = {"percentage": draw(st.sampled_from(["1", "2.5"]))}
        if draw(st.booleans()):
            first["flat_fee"] = draw(prices)
        price |= {"tier_mode": "graduated", "tiers": [first, rest]}
    elif mode == "percentage":
        price["percentage"] = draw(st.sampled_from(["2.5", "10"]))
        floor, cap = draw(st.sampled_from([None, "1"])), draw(st.sampled_from([None, "5"]))
        if floor is not None:
            price["floor"] = floor
        if cap is not None:
            price["cap"] = cap
        if draw(st.booleans()):
            price["fixed_fee"] = draw(st.sampled_from(["0.25", "2"]))
        if draw(st.booleans()):
            price["free_value"] = draw(st.sampled_from(["30", "500"]))
    else:
        bound = draw(st.integers(1, 4))
        # Each tier a unit price, a flat fee or both.
        tier = st.sampled_from(["unit", "flat", "both"]).map(
            lambda kind: {
                **({"unit_price": draw(prices)} if kind != "flat" else {}),
                **({"flat_fee": draw(prices)} if kind != "unit" else {}),
            }
        )
        price |= {"tier_mode": mode, "tiers": [{"up_to": bound, **draw(tier)}, draw(tier)]}
    return price


@st.composite
def scenarios(draw) -> Scenario:
    plan: dict = {
        "outcomes": [draw(outcome_prices())],
        "base_fee": draw(st.sampled_from(["0", "5"])),
    }
    if draw(st.booleans()):
        plan["minimum_spend"] = draw(st.sampled_from(["3", "25"]))
    if draw(st.booleans()):
        plan["token_pass_through"] = [
            {"feature": "", "markup": draw(st.sampled_from(["0", "0.25"]))}
        ]
        if draw(st.booleans()):  # premium calls at another markup
            plan["token_pass_through"][0] |= {
                "dimension": "tier",
                "markups": [{"value": "premium", "markup": draw(st.sampled_from(["0", "1"]))}],
            }
    if draw(st.booleans()):
        plan |= {"premium_seat_fee": "7", "seat_mode": "active"}
    days = st.integers(0, 44)  # 0-30: October, 31-44: November
    successes = draw(
        st.lists(st.tuples(days, st.none() | st.sampled_from(["8", "40", "400"])), max_size=8)
    )
    calls = draw(
        st.lists(
            st.tuples(
                days, st.sampled_from(["0.01", "0.333", "1.5"]), st.none() | st.integers(0, 2)
            ),
            max_size=8,
        )
    )
    reversals = draw(st.lists(st.integers(0, max(len(successes) - 1, 0)), max_size=3, unique=True))
    late_after = draw(st.integers(0, len(successes) + len(calls)))
    return Scenario(plan, successes, calls, reversals if successes else [], late_after)


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(scenarios())
def test_the_preview_just_before_a_close_is_the_invoice_it_makes(client_with_key, scenario):
    name = f"s{next(_ids)}"
    version = plan_load(name, **scenario.plan)
    customer = customer_create(external_id=name)
    Subscription.objects.create(customer=customer, plan=version.plan, started_at=OCTOBER)
    facts = [("success", *fact) for fact in scenario.successes] + [
        ("call", *fact) for fact in scenario.calls
    ]
    outcomes: list[Outcome] = []

    def record(index: int) -> None:
        kind, day, *rest = facts[index]
        at = OCTOBER + timedelta(days=day, hours=12)
        if kind == "success":
            # Channels in turn: priced ones, an unknown one, none.
            channel = ["chat", "email", "fax", None][index % 4]
            outcomes.append(success(customer, at, rest[0], channel))
        else:
            cost, user = rest
            call(customer, at, cost, user="" if user is None else f"u{user}",
                 tier="" if user is None else "premium")  # fmt: skip

    for index in range(scenario.late_after):
        record(index)
    period_close(customer_id=customer.pk, period_start=OCTOBER)
    for index in range(scenario.late_after, len(facts)):
        record(index)
    for index in scenario.reversals:
        if index < len(outcomes):
            reverse(outcomes[index])

    body = preview(client_with_key, name, NOVEMBER)
    november = period_close(customer_id=customer.pk, period_start=NOVEMBER)

    assert invoice_lines(november) == preview_lines(body)
    assert november.total == body["total"]
