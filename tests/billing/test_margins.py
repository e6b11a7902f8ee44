"""GET /v1/analytics/margins on a scenario worked by hand.

October 2026 (closed by the test), two USD customers:

- `fin` pays $2.00 per resolution. Three resolutions succeed and one fails; each had one
  gpt-4o call costing $0.50. Revenue 3 x $2.00 = $6.00, cost 4 x $0.50 = $2.00, margin
  $4.00 (66.67 %), cost per success $2.00 / 3.
- `duo` pays a $10 base fee and $10 per active premium seat, with `seo` included (not
  billed). Premium users u1 (gpt-4o, $25) and u2 (gpt-4o-mini, $15) chat; the free tier's
  seo descriptions cost $5 (gpt-4o-mini). Revenue $10 + 2 x $10 = $30, cost $45: the
  premium heavy users lose it $15.

The seat fee ($20) and the base fee ($10) spread over the two premium chat cells by cost
(25 : 15): gpt-4o $12.50 + $6.25 = $18.75, gpt-4o-mini $7.50 + $3.75 = $11.25; nothing
over seo, the included feature.
"""

import logging
import threading
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from billing.analytics.models import Reconciliation, ReconciliationCell
from billing.analytics.services import invoices_reconcile
from billing.analytics.tasks import reconcile_missing
from billing.invoicing.models import FxRate, Invoice
from billing.invoicing.services import invoice_move, period_close
from billing.invoicing.tasks import close_period
from billing.money import from_minor_units
from billing.plans.models import Subscription
from outcomes.models import Outcome
from tests.billing.factories import plan_load
from tests.metering.factories import customer_create, event_payload
from tests.support.faults import broker_down
from tests.support.polling import wait_for

# Closes bill what their snapshot sees of committed transactions (billing/invoicing/watermark.py):
# facts and closes each commit.
pytestmark = pytest.mark.django_db(transaction=True)

OCTOBER = datetime(2026, 10, 1, tzinfo=UTC)
NOVEMBER = datetime(2026, 11, 1, tzinfo=UTC)
NO_DISPUTES = {"disputed": 0, "disputes_accepted": 0, "dispute_rate_percent": "0"}
DAY = timedelta(days=1)


def subscribe(external_id, plan, started_at=OCTOBER):
    customer = customer_create(external_id=external_id)
    Subscription.objects.create(customer=customer, plan=plan, started_at=started_at)
    return customer


def outcome(customer, external_id, status, at):
    times = {"succeeded": "succeeded_at", "failed": "failed_at"}
    return Outcome.objects.create(
        external_id=external_id,
        customer=customer,
        type="resolution",
        status=status,
        occurred_at=at,
        succeeded_recorded_at=at if status == "succeeded" else None,
        **{times[status]: at},
    )


def close(customer_id):
    """Close October, and make its margin breakdown as the task after the close does."""
    invoice = period_close(customer_id=customer_id, period_start=OCTOBER)
    invoices_reconcile(invoice_ids=[invoice.pk])
    return invoice


def post_events(client, events):
    response = client.post("/v1/events", {"events": events}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["accepted"] == len(events)


@pytest.fixture
def october(client_with_key, settings):
    """The scenario of the module docstring, October closed."""
    settings.METERING_LATE_EVENT_WINDOW_DAYS = 400
    outcomes_plan = plan_load("outcomes", outcomes=[{"type": "resolution", "unit_price": "2.00"}])
    premium_plan = plan_load(
        "premium",
        base_fee="10",
        premium_seat_fee="10",
        seat_mode="active",
        included_features=["seo"],
    )
    fin = subscribe("fin", outcomes_plan.plan)
    duo = subscribe("duo", premium_plan.plan)
    at = OCTOBER + 10 * DAY
    events = []
    for i, status in enumerate(["succeeded", "succeeded", "succeeded", "failed"]):
        outcome(fin, f"fin-{i}", status, at)
        events.append(
            event_payload("fin", outcome=f"fin-{i}", cost="0.50", timestamp=at.isoformat())
        )
    events += [
        event_payload(
            "duo",
            user="u1",
            tier="premium",
            feature="chat",
            cost="25",
            timestamp=at.isoformat(),
        ),
        event_payload(
            "duo",
            user="u2",
            tier="premium",
            feature="chat",
            model="gpt-4o-mini",
            cost="15",
            timestamp=at.isoformat(),
        ),
        event_payload(
            "duo",
            tier="free",
            feature="seo",
            model="gpt-4o-mini",
            cost="5",
            timestamp=at.isoformat(),
        ),
    ]
    post_events(client_with_key, events)
    for customer in (fin, duo):
        close(customer.pk)
    return client_with_key


def margins(client, **params):
    params.setdefault("from", OCTOBER.isoformat())
    params.setdefault("to", NOVEMBER.isoformat())
    response = client.get("/v1/analytics/margins", params)
    assert response.status_code == 200, response.content
    return response.json()


def figures(row):
    return (row["revenue"], row["inference_cost"], row["margin"], row["margin_percent"])


def test_by_customer_one_profitable_on_outcomes_one_losing_on_premium_heavy_users(october):
    report = margins(october, group_by="customer")

    assert report["currency"] == "USD"
    assert report["periods"] == {"closed": 2, "open": 0}
    rows = {row["key"]: row for row in report["rows"]}
    assert figures(rows["fin"]) == ("6", "2", "4", "66.67")
    assert rows["fin"]["outcomes"] == {"succeeded": 3, "failed": 1, "reversed": 0, **NO_DISPUTES}
    assert rows["fin"]["cost_per_success"] == "0.666666666667"
    assert rows["fin"]["calls"] == 4
    assert rows["fin"]["tokens"] == 4 * 1200
    assert figures(rows["duo"]) == ("30", "45", "-15", "-50")
    assert rows["duo"]["outcomes"] == {
        "succeeded": 0,
        "failed": 0,
        "reversed": 0,
        **NO_DISPUTES,
        "dispute_rate_percent": None,
    }
    assert rows["duo"]["cost_per_success"] is None
    assert figures(report["totals"]) == ("36", "47", "-11", "-30.56")
    assert report["missing_rates"] == []


def test_by_feature_the_included_feature_is_cost_with_zero_revenue(october):
    rows = {row["key"]: row for row in margins(october, group_by="feature")["rows"]}

    assert figures(rows["seo"]) == ("0", "5", "-5", None)
    assert rows["seo"]["included"] is True
    assert figures(rows["chat"]) == ("30", "40", "-10", "-33.33")
    assert rows["chat"]["included"] is False
    assert figures(rows[None]) == ("6", "2", "4", "66.67")  # fin's calls have no feature
    assert rows["chat"]["outcomes"] is None  # outcomes are per customer and type only


def test_by_model_the_fees_follow_the_cost_of_the_calls_they_billed(october):
    rows = {row["key"]: row for row in margins(october, group_by="model")["rows"]}

    assert figures(rows["openai:gpt-4o"]) == ("24.75", "27", "-2.25", "-9.09")
    assert figures(rows["openai:gpt-4o-mini"]) == ("11.25", "20", "-8.75", "-77.78")


def test_by_tier_and_by_outcome_type(october):
    tiers = {row["key"]: row for row in margins(october, group_by="tier")["rows"]}
    assert figures(tiers["premium"]) == ("30", "40", "-10", "-33.33")
    assert figures(tiers["free"]) == ("0", "5", "-5", None)

    types = {row["key"]: row for row in margins(october, group_by="outcome_type")["rows"]}
    assert figures(types["resolution"]) == ("6", "2", "4", "66.67")
    assert types["resolution"]["outcomes"] == {
        "succeeded": 3,
        "failed": 1,
        "reversed": 0,
        **NO_DISPUTES,
    }
    assert types["resolution"]["cost_per_success"] == "0.666666666667"
    assert figures(types[None]) == ("30", "45", "-15", "-50")


def test_filters_narrow_the_calls(october):
    report = margins(october, group_by="customer", model="gpt-4o-mini")
    assert [(row["key"], row["inference_cost"]) for row in report["rows"]] == [("duo", "20")]

    report = margins(october, group_by="model", customer="duo", feature="chat")
    assert {row["key"]: row["revenue"] for row in report["rows"]} == {
        "openai:gpt-4o": "18.75",
        "openai:gpt-4o-mini": "11.25",
    }


def test_the_open_period_is_computed_live(october, client_with_key):
    now = timezone.now()
    month_start = datetime(now.year, now.month, 1, tzinfo=UTC)
    fin = Outcome.objects.get(external_id="fin-0").customer
    outcome(fin, "fin-live", "succeeded", now - timedelta(minutes=5))
    post_events(
        client_with_key,
        [event_payload("fin", outcome="fin-live", cost="0.25", timestamp=now.isoformat())],
    )

    window = {"from": month_start.isoformat(), "to": (month_start + 32 * DAY).isoformat()}
    report = margins(client_with_key, group_by="customer", **window)

    # duo has no calls this month but its base fee is due: $10, no seats.
    assert report["periods"] == {"closed": 0, "open": 2}
    rows = {row["key"]: row for row in report["rows"]}
    assert figures(rows["fin"]) == ("2", "0.25", "1.75", "87.5")
    assert figures(rows["duo"]) == ("10", "0", "10", "100")


def test_revenue_in_another_currency_converts_at_the_rate_of_the_period(
    october, client_with_key, settings
):
    euro_plan = plan_load("euro", currency="EUR", base_fee="100")
    subscribe("bank", euro_plan.plan)
    post_events(
        client_with_key,
        [event_payload("bank", cost="50", timestamp=(OCTOBER + DAY).isoformat())],
    )
    close(euro_plan.plan.subscriptions.get().customer_id)
    FxRate.objects.create(currency="EUR", effective_from=OCTOBER, usd_per_unit=Decimal("1.1"))
    FxRate.objects.create(
        currency="EUR", effective_from=NOVEMBER, usd_per_unit=Decimal("2")
    )  # not October's

    rows = {row["key"]: row for row in margins(october, customer="bank")["rows"]}
    assert figures(rows["bank"]) == ("110", "50", "60", "54.55")
    assert rows["bank"]["revenue_by_currency"] == {"EUR": "100"}

    # Reported in euros: the revenue as billed, the cost $50 / 1.1.
    settings.REPORTING_CURRENCY = "EUR"
    report = margins(october, customer="bank")
    assert report["currency"] == "EUR"
    assert figures(report["rows"][0]) == ("100", "45.454545454545", "54.545454545455", "54.55")


def test_a_margin_that_needs_a_missing_rate_says_so(october, client_with_key):
    euro_plan = plan_load("euro", currency="EUR", base_fee="100")
    bank = subscribe("bank", euro_plan.plan)
    close(bank.pk)

    report = margins(october)
    rows = {row["key"]: row for row in report["rows"]}

    assert rows["bank"]["revenue"] is None
    assert rows["bank"]["margin"] is None
    assert rows["bank"]["revenue_by_currency"] == {"EUR": "100"}
    assert rows["bank"]["missing_rates"] == [{"currency": "EUR", "at": "2026-10-01T00:00:00Z"}]
    assert rows["fin"]["margin"] == "4"  # the USD customers are still known
    assert report["totals"]["margin"] is None
    assert report["missing_rates"] == [{"currency": "EUR", "at": "2026-10-01T00:00:00Z"}]


def test_unpriced_calls_make_a_cost_unknown_or_incomplete_never_zero(october, client_with_key):
    unpriced = {
        "provider": "acme-ai",
        "model": "secret-model",
        "timestamp": (OCTOBER + DAY).isoformat(),
    }
    post_events(
        client_with_key,
        [event_payload("fin", **unpriced), event_payload("duo", feature="seo", **unpriced)],
    )
    Invoice.objects.all().delete()  # closed again below, with the new calls
    for external_id in ("fin", "duo"):
        close(Subscription.objects.get(customer__external_id=external_id).customer_id)

    models = {row["key"]: row for row in margins(october, group_by="model")["rows"]}
    secret = models["acme-ai:secret-model"]
    assert (secret["calls"], secret["unpriced_calls"]) == (2, 2)
    assert (secret["inference_cost"], secret["cost_status"], secret["margin"]) == (
        None,
        "unknown",
        None,
    )
    assert models["openai:gpt-4o"]["cost_status"] == "complete"
    customers = {row["key"]: row for row in margins(october, group_by="customer")["rows"]}
    assert (customers["fin"]["inference_cost"], customers["fin"]["cost_status"]) == (
        "2",
        "incomplete",
    )  # a lower bound, said so
    response = october.get("/v1/analytics/margins", {"group_by": "model"})
    assert response.status_code == 200


def test_void_and_uncollectible_invoices_are_written_off_not_revenue(october):
    invoice_move(invoice_id=Invoice.objects.get(customer__external_id="fin").pk, status="void")
    invoice = Invoice.objects.get(customer__external_id="duo")
    invoice_move(invoice_id=invoice.pk, status="finalized")
    invoice_move(invoice_id=invoice.pk, status="uncollectible")

    report = margins(october, group_by="customer")

    rows = {row["key"]: row for row in report["rows"]}
    assert figures(rows["fin"]) == ("0", "2", "-2", None)  # the AI was still paid for
    assert rows["fin"]["written_off"] == "6"
    assert figures(rows["duo"]) == ("0", "45", "-45", None)
    assert rows["duo"]["written_off"] == "30"
    assert report["totals"]["written_off"] == "36"
    # Before its breakdown, too.
    ReconciliationCell.objects.all().delete()
    Reconciliation.objects.update(breakdown_at=None)
    assert margins(october, group_by="customer")["totals"]["revenue"] == "0"


def test_a_late_calls_cost_counts_in_the_period_whose_invoice_bills_it(october, client_with_key):
    version = plan_load("at-cost", token_pass_through=[{"feature": "", "markup": "0"}])
    customer = subscribe("late-co", version.plan)
    close(customer.pk)
    post_events(
        client_with_key,
        [event_payload("late-co", cost="3", timestamp=(OCTOBER + 20 * DAY).isoformat())],
    )
    november = period_close(customer_id=customer.pk, period_start=NOVEMBER)
    invoices_reconcile(invoice_ids=[november.pk])

    in_october = margins(october, customer="late-co")["totals"]
    in_november = margins(
        october,
        customer="late-co",
        **{"from": NOVEMBER.isoformat(), "to": (NOVEMBER + DAY).isoformat()},
    )["totals"]
    assert figures(in_october) == ("0", "0", "0", None)
    assert figures(in_november) == ("3", "3", "0", "0")  # billed in November: its cost too


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"group_by": "planet"}, "group_by"),
        ({"from": "yesterday"}, "from"),
        ({"from": "2026-11-01T00:00:00Z", "to": "2026-10-01T00:00:00Z"}, "to"),
    ],
)
def test_bad_parameters_are_refused_naming_the_field(client_with_key, params, field):
    response = client_with_key.get("/v1/analytics/margins", params)

    assert response.status_code == 400
    assert [error["field"] for error in response.json()["errors"]] == [field]


def test_an_unknown_customer_is_a_404(client_with_key):
    response = client_with_key.get("/v1/analytics/margins", {"customer": "nobody"})

    assert response.status_code == 404


def test_periods_without_their_breakdown_yet_count_per_customer(october):
    # As closed by an earlier payback, or before the task after the close has run.
    ReconciliationCell.objects.all().delete()
    Reconciliation.objects.update(breakdown_at=None)

    rows = {row["key"]: row for row in margins(october, group_by="customer")["rows"]}
    assert figures(rows["fin"]) == ("6", "2", "4", "66.67")
    assert figures(rows["duo"]) == ("30", "45", "-15", "-50")
    by_model = margins(october, group_by="model")["rows"]
    assert [(row["key"], row["revenue"]) for row in by_model] == [(None, "36")]


def test_periods_without_their_breakdown_yet_report_their_tokens_and_outcomes(october):
    # Between the close and its breakdown a period is one row per customer, but its
    # tokens and outcome counts are those the breakdown will report, never 0.
    def by_customer():
        rows = margins(october, group_by="customer")["rows"]
        return {row["key"]: (row["calls"], row["tokens"], row["outcomes"]) for row in rows}

    broken_down = by_customer()
    ReconciliationCell.objects.all().delete()
    Reconciliation.objects.update(breakdown_at=None, outcomes={})

    assert by_customer() == broken_down
    assert broken_down["fin"][1] > 0
    assert broken_down["fin"][2] == {"succeeded": 3, "failed": 1, "reversed": 0, **NO_DISPUTES}


def test_the_cells_of_a_closed_period_sum_to_its_invoice_and_its_row(october):
    for invoice in Invoice.objects.all():
        cells = invoice.cost_cells.all()
        revenue = sum(cell.revenue for cell in cells)
        assert revenue == from_minor_units(invoice.total, invoice.currency)
        assert sum(cell.cost for cell in cells) == invoice.reconciliation.inference_cost
        # And their sums are on its reconciliation row (the report by customer reads them).
        row = invoice.reconciliation
        assert (row.breakdown_revenue, row.breakdown_discount, row.outcome_cost) == (
            revenue,
            sum(cell.discount for cell in cells),
            sum(cell.cost for cell in cells if cell.outcome_type),
        )
        assert (row.calls, row.tokens, row.unpriced_calls) == (
            sum(cell.calls for cell in cells),
            sum(cell.tokens for cell in cells),
            sum(cell.unpriced_calls for cell in cells),
        )


def test_a_closed_period_without_calls_shows_its_outcomes_and_one_without_anything_none(october):
    """By customer, a closed period is read from its row (not its cells): a period with
    no call and nothing billed still shows its failed outcome, and one with neither is no
    row, as when its cells were grouped."""
    plan = Subscription.objects.get(customer__external_id="fin").plan
    failing, idle = subscribe("failing", plan), subscribe("idle", plan)
    outcome(failing, "failing-0", "failed", OCTOBER + 10 * DAY)
    for customer in (failing, idle):
        close(customer.pk)

    rows = {row["key"]: row for row in margins(october, group_by="customer")["rows"]}

    assert "idle" not in rows
    assert figures(rows["failing"]) == ("0", "0", "0", None)  # no revenue: no margin %
    assert (rows["failing"]["calls"], rows["failing"]["outcomes"]) == (
        0,
        # Nothing succeeded: no dispute rate to speak of.
        {"succeeded": 0, "failed": 1, "reversed": 0, **NO_DISPUTES, "dispute_rate_percent": None},
    )
    assert figures(rows["fin"]) == ("6", "2", "4", "66.67")  # the others as before


def test_reconciling_again_replaces_the_breakdown(october):
    before = sorted(ReconciliationCell.objects.values_list("invoice_id", "model", "revenue"))

    invoices_reconcile(invoice_ids=list(Invoice.objects.values_list("pk", flat=True)))

    after = sorted(ReconciliationCell.objects.values_list("invoice_id", "model", "revenue"))
    assert after == before


def test_the_sweep_makes_a_missing_breakdown(october):
    ReconciliationCell.objects.all().delete()
    Reconciliation.objects.update(breakdown_at=None)

    assert reconcile_missing() == 2
    assert reconcile_missing() == 0

    rows = {row["key"]: row for row in margins(october, group_by="model")["rows"]}
    assert rows["openai:gpt-4o"]["revenue"] == "24.75"


@pytest.mark.django_db(transaction=True)
def test_a_close_by_the_real_worker_makes_the_breakdown(celery_worker):
    plan = plan_load("outcomes", outcomes=[{"type": "resolution", "unit_price": "2.00"}])
    fin = subscribe("fin", plan.plan)
    outcome(fin, "fin-1", "succeeded", OCTOBER + DAY)
    close_period.delay(fin.pk, OCTOBER.isoformat())

    reconciliation = wait_for(
        lambda: Reconciliation.objects.filter(
            invoice__customer=fin, breakdown_at__isnull=False
        ).first(),
        what="the breakdown",
        timeout=20,
    )

    assert reconciliation.breakdown_at is not None
    assert reconciliation.outcomes == {"resolution": [1, 0, 0]}
    [cell] = ReconciliationCell.objects.all()
    assert (cell.outcome_type, cell.revenue) == ("resolution", Decimal(2))


@pytest.mark.django_db(transaction=True)
def test_with_the_broker_down_a_close_still_invoices_and_the_sweep_catches_up(caplog):
    plan = plan_load("outcomes", outcomes=[{"type": "resolution", "unit_price": "2.00"}])
    fin = subscribe("fin", plan.plan)
    outcome(fin, "fin-1", "succeeded", OCTOBER + DAY)
    # A real worker started by an earlier test leaves the root logger at ERROR.
    caplog.set_level(logging.WARNING, logger="common.queue")
    with broker_down():
        invoice = period_close(customer_id=fin.pk, period_start=OCTOBER)

    assert invoice.total == 200
    assert "reconcile_invoices" in caplog.text and "a sweep will send it" in caplog.text
    assert Reconciliation.objects.get().breakdown_at is None
    assert reconcile_missing() == 1
    assert Reconciliation.objects.get().outcomes == {"resolution": [1, 0, 0]}


def test_margin_rows_are_paged_and_totals_cover_all(october):
    report = margins(october, group_by="customer", limit=1)

    assert [row["key"] for row in report["rows"]] == ["duo"]
    assert (report["rows_total"], report["next_offset"]) == (2, 1)
    assert report["totals"]["revenue"] == "36"
    assert margins(october, group_by="customer", limit=1, offset=1)["next_offset"] is None


@pytest.mark.django_db(transaction=True)
def test_two_breakdowns_of_the_same_invoices_at_once_write_the_cells_once():
    plan = plan_load("outcomes", outcomes=[{"type": "resolution", "unit_price": "2.00"}])
    fin = subscribe("fin", plan.plan)
    outcome(fin, "fin-1", "succeeded", OCTOBER + DAY)
    invoice = period_close(customer_id=fin.pk, period_start=OCTOBER)
    start = threading.Barrier(2)

    def reconcile() -> None:
        from django.db import connection

        start.wait()
        try:
            invoices_reconcile(invoice_ids=[invoice.pk])
        finally:
            connection.close()

    threads = [threading.Thread(target=reconcile) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert list(ReconciliationCell.objects.values_list("outcome_type", "revenue")) == [
        ("resolution", Decimal(2))
    ]


def test_the_dashboards_waterfall_takes_the_included_feature_apart(october):
    from billing.analytics.selectors.dashboard import margin_waterfall
    from billing.analytics.selectors.margins import MarginFilters

    steps = margin_waterfall(
        start=OCTOBER, end=NOVEMBER, now=timezone.now(), filters=MarginFilters()
    )

    # Revenue $36; gpt-4o: fin's $2 and u1's $25; gpt-4o-mini: u2's $15 (seo's $5 apart,
    # included); the margin: $36 - $47.
    assert [(step.label, step.amount) for step in steps] == [
        ("revenue", Decimal(36)),
        ("openai:gpt-4o", Decimal(-27)),
        ("openai:gpt-4o-mini", Decimal(-15)),
        ("included features", Decimal(-5)),
        ("gross margin", Decimal(-11)),
    ]
