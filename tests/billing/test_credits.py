"""Prepaid credits: grants pay the invoices of the periods they are live in, in their
order, never below zero, exactly once, and what an expiring grant did not pay expires
with the close of its period.

The scenario: `acme` on a $50/month plan from October 2026 (UTC periods).
"""

import json
import threading
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import connections

from billing.analytics.models import Reconciliation
from billing.analytics.selectors.margins import (
    MarginFilters,
    MarginReport,
    margins_report,
    revenue_spread,
)
from billing.analytics.services import invoices_reconcile
from billing.credits.drawdown import Draw, GrantBalance, credits_draw
from billing.credits.models import CreditEntry, CreditGrant, EntryKind, GrantKind
from billing.credits.services import (
    GrantRequest,
    grant_create,
    grant_void,
    plan_credits_grant_running,
)
from billing.invoicing.models import Invoice
from billing.invoicing.selectors.cells import Cell
from billing.invoicing.services import period_close
from billing.plans.models import LineKind, Subscription
from billing.plans.pricing import RatedLine
from metering.schemas import parse_event_batch
from metering.services import events_ingest
from tests.billing.factories import plan_load
from tests.metering.factories import customer_create, event_payload

OCTOBER = datetime(2026, 10, 1, tzinfo=UTC)
NOVEMBER = datetime(2026, 11, 1, tzinfo=UTC)
DECEMBER = datetime(2026, 12, 1, tzinfo=UTC)
DAY = timedelta(days=1)


# --- the drawdown, pure ---------------------------------------------------------------


def grant(grant_id: int, balance: int, priority: int = 100, expires: int | None = None):
    expires_at = None if expires is None else OCTOBER + expires * DAY
    return GrantBalance(grant_id, priority, expires_at, balance)


def test_grants_are_drawn_lowest_priority_first_then_earliest_expiry_then_oldest():
    grants = [
        grant(1, 1000),  # no expiry: after those that expire
        grant(2, 1000, expires=20),
        grant(3, 1000, expires=10),
        grant(4, 1000, priority=5),  # first, whatever its expiry
        grant(5, 1000, expires=10),  # as 3, but younger
    ]

    assert credits_draw(4500, grants) == (
        Draw(4, 1000),
        Draw(3, 1000),
        Draw(5, 1000),
        Draw(2, 1000),
        Draw(1, 500),
    )


@pytest.mark.parametrize("total", [0, -500])
def test_credits_never_take_an_invoice_below_zero(total):
    assert credits_draw(total, [grant(1, 1000)]) == ()


def test_what_credits_cannot_cover_stays_to_pay():
    draws = credits_draw(5000, [grant(1, 1200), grant(2, 300)])

    assert sum(draw.amount for draw in draws) == 1500


# --- grants, the close and the ledger --------------------------------------------------


@pytest.fixture
def acme(db):
    version = plan_load("pro", base_fee="50")
    customer = customer_create(external_id="acme")
    Subscription.objects.create(customer=customer, plan=version.plan, started_at=OCTOBER)
    return customer


def give(customer, amount: str, **terms) -> CreditGrant:
    terms.setdefault("effective_at", OCTOBER)
    created, _ = grant_create(
        customer=customer, request=GrantRequest(amount=Decimal(amount), currency="USD", **terms)
    )
    return created


def balance(created: CreditGrant) -> Decimal:
    return sum((entry.amount for entry in created.entries.all()), Decimal(0))


def lines(invoice: Invoice) -> list[tuple[str, int]]:
    return [(line.kind, line.amount) for line in invoice.lines.all()]


def test_an_invoice_is_paid_from_credits_by_a_negative_line(acme):
    promo = give(acme, "30")

    invoice = period_close(customer_id=acme.pk, period_start=OCTOBER)

    assert lines(invoice) == [(LineKind.BASE_FEE, 5000), (LineKind.CREDITS_APPLIED, -3000)]
    assert invoice.total == 2000
    # Promotional credits are a discount: the margin counts what the invoice bills.
    assert Reconciliation.objects.get(invoice=invoice).revenue == Decimal(20)
    drawn = CreditEntry.objects.get(grant=promo, kind=EntryKind.DRAWN)
    assert (drawn.amount, drawn.invoice_id, drawn.at) == (Decimal(-30), invoice.pk, NOVEMBER)
    assert balance(promo) == 0


def test_credits_left_over_pay_the_next_invoice(acme):
    promo = give(acme, "80")

    october = period_close(customer_id=acme.pk, period_start=OCTOBER)
    november = period_close(customer_id=acme.pk, period_start=NOVEMBER)

    assert october.total == 0 and lines(october)[-1] == (LineKind.CREDITS_APPLIED, -5000)
    assert november.total == 2000 and lines(november)[-1] == (LineKind.CREDITS_APPLIED, -3000)
    assert balance(promo) == 0


def test_a_close_run_again_draws_once(acme):
    promo = give(acme, "30")

    first = period_close(customer_id=acme.pk, period_start=OCTOBER)
    again = period_close(customer_id=acme.pk, period_start=OCTOBER)

    assert again.pk == first.pk
    assert CreditEntry.objects.filter(grant=promo, kind=EntryKind.DRAWN).count() == 1
    assert balance(promo) == 0


def test_a_grant_expiring_in_a_period_pays_its_invoice_and_the_rest_expires_then(acme):
    # Live from October 1 to October 15: it pays October's invoice (closed on November
    # 1), and what it did not pay expires with that close, dated its expiry.
    promo = give(acme, "80", expires_at=OCTOBER + 14 * DAY)

    october = period_close(customer_id=acme.pk, period_start=OCTOBER)

    assert october.total == 0
    expired = CreditEntry.objects.get(grant=promo, kind=EntryKind.EXPIRED)
    assert (expired.amount, expired.at) == (Decimal(-30), OCTOBER + 14 * DAY)
    assert balance(promo) == 0
    november = period_close(customer_id=acme.pk, period_start=NOVEMBER)
    assert november.total == 5000
    assert CreditEntry.objects.filter(grant=promo, kind=EntryKind.EXPIRED).count() == 1


def test_periods_are_half_open_for_grants(acme):
    # Expiring exactly at October's end: it pays October, not November. Taking effect
    # exactly then: November, not October.
    ending = give(acme, "20", expires_at=NOVEMBER)
    starting = give(acme, "20", effective_at=NOVEMBER)

    october = period_close(customer_id=acme.pk, period_start=OCTOBER)
    november = period_close(customer_id=acme.pk, period_start=NOVEMBER)

    assert october.total == 3000 and november.total == 3000
    assert {e.invoice_id for e in ending.entries.filter(kind=EntryKind.DRAWN)} == {october.pk}
    assert {e.invoice_id for e in starting.entries.filter(kind=EntryKind.DRAWN)} == {november.pk}


def test_a_voided_grant_keeps_what_it_paid_and_pays_nothing_more(acme):
    promo = give(acme, "80")
    period_close(customer_id=acme.pk, period_start=OCTOBER)

    grant_void(grant_id=promo.pk, reason="goodwill withdrawn")
    grant_void(grant_id=promo.pk, reason="twice")

    kinds = [(e.kind, e.amount) for e in promo.entries.order_by("at", "pk")]
    assert kinds == [
        (EntryKind.GRANT, Decimal(80)),
        (EntryKind.DRAWN, Decimal(-50)),
        (EntryKind.VOIDED, Decimal(-30)),
    ]
    assert period_close(customer_id=acme.pk, period_start=NOVEMBER).total == 5000


def test_grants_in_another_currency_pay_nothing(acme):
    grant_create(
        customer=acme,
        request=GrantRequest(amount=Decimal(40), currency="EUR", effective_at=OCTOBER),
    )

    assert period_close(customer_id=acme.pk, period_start=OCTOBER).total == 5000


@pytest.mark.django_db(transaction=True)  # the preview and the close as in production
def test_the_preview_shows_the_credits_the_close_draws(client_with_key):
    version = plan_load("pro", base_fee="50")
    customer = customer_create(external_id="acme")
    Subscription.objects.create(customer=customer, plan=version.plan, started_at=OCTOBER)
    give(customer, "30", priority=1)
    give(customer, "100", expires_at=DECEMBER)

    response = client_with_key.get(
        "/v1/customers/acme/usage", {"period": (OCTOBER + DAY).isoformat()}
    )
    preview = response.json()["invoice_preview"]
    invoice = period_close(customer_id=customer.pk, period_start=OCTOBER)

    assert [(line["kind"], line["amount"]) for line in preview["lines"]] == lines(invoice)
    assert preview["total"] == invoice.total == 0
    assert preview["lines"][-1]["description"] == "Credits applied"


# --- credits the plan gives each period -------------------------------------------------


def subscribe(credits: list[dict], timezone: str = "UTC") -> object:
    version = plan_load("included", base_fee="50", credits=credits)
    customer = customer_create(external_id="inc")
    Subscription.objects.create(
        customer=customer, plan=version.plan, started_at=OCTOBER, timezone=timezone
    )
    return customer


def plan_grants(customer) -> list[tuple[str, Decimal, datetime | None]]:
    return [
        (grant.external_id, balance(grant), grant.expires_at)
        for grant in CreditGrant.objects.filter(
            customer=customer, kind=GrantKind.RECURRING
        ).order_by("effective_at", "pk")
    ]


def test_the_plan_grants_each_period_and_what_it_left_expires_at_the_period_end(db):
    customer = subscribe([{"amount": "80", "description": "AI usage included"}])

    october = period_close(customer_id=customer.pk, period_start=OCTOBER)
    november = period_close(customer_id=customer.pk, period_start=NOVEMBER)

    assert (october.total, november.total) == (0, 0)
    assert plan_grants(customer) == [
        (f"plan:{OCTOBER.isoformat()}:0", Decimal(0), NOVEMBER),
        (f"plan:{NOVEMBER.isoformat()}:0", Decimal(0), DECEMBER),
    ]
    first = CreditGrant.objects.get(external_id=f"plan:{OCTOBER.isoformat()}:0")
    assert first.description == "AI usage included"
    assert [(e.kind, e.amount, e.at) for e in first.entries.order_by("pk")] == [
        (EntryKind.GRANT, Decimal(80), OCTOBER),
        (EntryKind.DRAWN, Decimal(-50), NOVEMBER),
        (EntryKind.EXPIRED, Decimal(-30), NOVEMBER),
    ]


def test_credits_that_roll_over_keep_what_is_left_and_are_drawn_oldest_first(db):
    customer = subscribe([{"amount": "80", "rollover": True}])

    period_close(customer_id=customer.pk, period_start=OCTOBER)
    november = period_close(customer_id=customer.pk, period_start=NOVEMBER)

    assert november.total == 0
    assert plan_grants(customer) == [
        (f"plan:{OCTOBER.isoformat()}:0", Decimal(0), None),  # 30 left, drawn in November
        (f"plan:{NOVEMBER.isoformat()}:0", Decimal(60), None),
    ]


def test_the_job_grants_at_the_period_start_once_however_late_it_runs(db):
    customer = subscribe([{"amount": "20"}])

    assert plan_credits_grant_running(now=OCTOBER + 19 * DAY) == 1
    assert plan_credits_grant_running(now=OCTOBER + 20 * DAY) == 0
    invoice = period_close(customer_id=customer.pk, period_start=OCTOBER)

    made = CreditGrant.objects.get(customer=customer)
    assert (made.effective_at, made.expires_at) == (OCTOBER, NOVEMBER)
    assert invoice.total == 3000
    assert CreditEntry.objects.filter(grant=made, kind=EntryKind.GRANT).count() == 1


def test_periods_of_a_subscription_in_its_timezone_bound_the_plans_grants(db):
    # Paris: November starts at 23:00 UTC on October 31 (winter time since October 25).
    customer = subscribe([{"amount": "20"}], timezone="Europe/Paris")
    paris_november = datetime(2026, 10, 31, 23, tzinfo=UTC)

    plan_credits_grant_running(now=paris_november)

    made = CreditGrant.objects.get(customer=customer)
    assert (made.effective_at, made.expires_at) == (
        paris_november,
        datetime(2026, 11, 30, 23, tzinfo=UTC),
    )


@pytest.mark.django_db(transaction=True)
def test_the_preview_counts_the_plans_credits_before_the_job_made_them(client_with_key):
    customer = subscribe([{"amount": "20", "priority": 1}])
    give(customer, "100")

    response = client_with_key.get(
        "/v1/customers/inc/usage", {"period": (OCTOBER + DAY).isoformat()}
    )
    preview = response.json()["invoice_preview"]
    invoice = period_close(customer_id=customer.pk, period_start=OCTOBER)

    assert preview["total"] == invoice.total == 0
    assert [(line["kind"], line["amount"]) for line in preview["lines"]] == lines(invoice)
    assert plan_grants(customer) == [(f"plan:{OCTOBER.isoformat()}:0", Decimal(0), NOVEMBER)]


@pytest.mark.django_db(transaction=True)  # each job commits, as two workers would
def test_two_grant_jobs_at_once_make_each_plan_grant_once():
    customer = subscribe([{"amount": "20"}, {"amount": "5", "rollover": True}])
    start = threading.Barrier(2)
    made: list[int] = []

    def job() -> None:
        try:
            start.wait()
            made.append(plan_credits_grant_running(now=OCTOBER + 3 * DAY))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=job) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sum(made) == 2  # between them, each grant once
    assert CreditGrant.objects.filter(customer=customer).count() == 2
    assert CreditEntry.objects.filter(grant__customer=customer).count() == 2


# --- promotional credits in the margin report -------------------------------------------


def test_promotional_credits_are_a_discount_in_the_margin_report(acme, settings):
    """What free credits pay is not revenue: the report's revenue is net of it, and shows
    it as `discount`, spread over the calls as the base fee is: live, closed before its
    breakdown, and closed with it."""
    settings.METERING_LATE_EVENT_WINDOW_DAYS = 3650  # the dates here are fixed
    give(acme, "30")
    body = {
        "events": [
            event_payload("acme", timestamp=(OCTOBER + n * DAY).isoformat(), model=model)
            for n, model in enumerate(["gpt-4o", "gpt-4o", "gpt-4o-mini"], start=1)
        ]
    }
    events_ingest(events=parse_event_batch(json.dumps(body).encode(), now=OCTOBER + 5 * DAY))

    def report(group_by: str, now: datetime) -> MarginReport:
        return margins_report(
            start=OCTOBER, end=NOVEMBER, group_by=group_by, filters=MarginFilters(), now=now
        )

    def figures(group_by: str, now: datetime) -> tuple[Decimal | None, Decimal | None]:
        found = report(group_by, now)
        assert sum(row.discount for row in found.rows) == found.totals.discount
        return found.totals.revenue, found.totals.discount

    live = OCTOBER + 20 * DAY
    assert figures("customer", live) == (Decimal(20), Decimal(30))
    by_model = report("model", live)
    assert {row.key for row in by_model.rows} == {"openai:gpt-4o", "openai:gpt-4o-mini"}
    assert all(row.discount > 0 for row in by_model.rows)
    assert figures("model", live) == (Decimal(20), Decimal(30))

    invoice = period_close(customer_id=acme.pk, period_start=OCTOBER)
    after = NOVEMBER + DAY
    assert figures("customer", after) == (Decimal(20), Decimal(30))  # before the breakdown
    invoices_reconcile(invoice_ids=[invoice.pk])
    assert figures("customer", after) == (Decimal(20), Decimal(30))
    assert figures("model", after) == (Decimal(20), Decimal(30))


def test_bought_credits_are_revenue_not_a_discount():
    """Paid credits that pay an invoice count as revenue when used: no discount."""
    cells = [Cell("", "", "", "openai", "gpt-4o", calls=2, cost=Decimal("0.5"))]
    lines = [
        RatedLine(LineKind.BASE_FEE, "Base fee", Decimal(1), Decimal(50), 5000),
        RatedLine(LineKind.PREPAID_APPLIED, "Prepaid credits", Decimal(1), Decimal(-30), -3000),
    ]
    [spread] = revenue_spread(cells=cells, lines=lines, currency="USD", included=())
    assert (spread.revenue, spread.discount) == (Decimal(50), Decimal(0))
    lines[1] = RatedLine(
        LineKind.CREDITS_APPLIED, "Credits applied", Decimal(1), Decimal(-30), -3000
    )
    [spread] = revenue_spread(cells=cells, lines=lines, currency="USD", included=())
    assert (spread.revenue, spread.discount) == (Decimal(20), Decimal(30))
