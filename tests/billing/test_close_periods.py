"""Closing periods into invoices: once, at the right time, with a margin row."""

import json
import threading
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from api.errors import ApiError
from billing.analytics.models import Reconciliation
from billing.invoicing.models import Invoice, InvoiceStatus
from billing.invoicing.selectors import periods_due
from billing.invoicing.services import invoice_move, period_close
from billing.invoicing.tasks import close_due_periods, close_period
from billing.plans.models import Subscription
from metering.schemas import parse_event_batch
from metering.services import events_ingest
from outcomes.models import Outcome
from tests.billing.factories import plan_load
from tests.metering.factories import customer_create, event_payload
from tests.support.polling import task_results, wait_for

NOW = datetime(2026, 11, 27, 12, tzinfo=UTC)
OCTOBER = datetime(2026, 10, 1, tzinfo=UTC)


def subscribe(external_id="acme", started_at=OCTOBER, **plan_fields):
    version = plan_load(
        "support-ai", outcomes=[{"type": "resolution", "unit_price": "0.99"}], **plan_fields
    )
    customer = customer_create(external_id=external_id)
    return Subscription.objects.create(customer=customer, plan=version.plan, started_at=started_at)


def succeed(customer, external_id, at, recorded_at=None):
    return Outcome.objects.create(
        external_id=external_id,
        customer=customer,
        type="resolution",
        status="succeeded",
        occurred_at=at,
        succeeded_at=at,
        succeeded_recorded_at=recorded_at or at,
    )


@pytest.mark.django_db(transaction=True)
def test_due_periods_wait_for_the_grace_window(settings):
    settings.BILLING_CLOSE_GRACE_MINUTES = 60
    subscription = subscribe()
    november = datetime(2026, 11, 1, tzinfo=UTC)

    assert [d.start for d in periods_due(as_of=november + timedelta(minutes=59))] == []
    assert [d.start for d in periods_due(as_of=november + timedelta(minutes=60))] == [OCTOBER]
    # Two periods behind: both are due, oldest first.
    assert [d.start for d in periods_due(as_of=datetime(2026, 12, 1, 1, tzinfo=UTC))] == [
        OCTOBER,
        november,
    ]
    assert next(periods_due(as_of=NOW)).customer_id == subscription.customer_id


@pytest.mark.django_db(transaction=True)
def test_closing_a_period_bills_its_successes_and_records_the_margin():
    subscription = subscribe()
    customer = subscription.customer
    for i in range(3):
        succeed(customer, f"o-{i}", OCTOBER + timedelta(days=i))
    succeed(customer, "next-month", datetime(2026, 11, 2, tzinfo=UTC))

    invoice = period_close(customer_id=customer.pk, period_start=OCTOBER)

    assert (invoice.period_end, invoice.total, invoice.currency) == (
        datetime(2026, 11, 1, tzinfo=UTC),
        297,
        "USD",
    )
    assert invoice.status == InvoiceStatus.DRAFT
    assert [(line.kind, line.quantity, line.amount) for line in invoice.lines.all()] == [
        ("outcome", Decimal(3), 297)
    ]
    reconciliation = Reconciliation.objects.get(invoice=invoice)
    assert (reconciliation.revenue, reconciliation.margin) == (Decimal("2.97"), Decimal("2.97"))


@pytest.mark.django_db(transaction=True)
def test_a_zero_total_period_still_gets_an_invoice():
    subscription = subscribe()
    invoice = period_close(customer_id=subscription.customer_id, period_start=OCTOBER)
    assert invoice.total == 0 and invoice.lines.count() == 0


@pytest.mark.django_db(transaction=True)
def test_closing_again_creates_nothing():
    subscription = subscribe()
    first = period_close(customer_id=subscription.customer_id, period_start=OCTOBER)
    again = period_close(customer_id=subscription.customer_id, period_start=OCTOBER)
    assert again.pk == first.pk
    assert Invoice.objects.count() == 1 and Reconciliation.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_start_that_is_not_a_period_start_is_refused():
    subscription = subscribe()
    with pytest.raises(ValueError, match="does not start a period"):
        period_close(customer_id=subscription.customer_id, period_start=OCTOBER + timedelta(days=3))


@pytest.mark.django_db(transaction=True)
def test_two_closes_of_one_period_at_once_make_one_invoice():
    subscription = subscribe()
    succeed(subscription.customer, "o-1", OCTOBER + timedelta(days=1))
    barrier = threading.Barrier(2)
    results: list[int] = []

    def close() -> None:
        try:
            barrier.wait()
            results.append(
                period_close(customer_id=subscription.customer_id, period_start=OCTOBER).pk
            )
        finally:
            connection.close()

    threads = [threading.Thread(target=close) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(results) == 2 and results[0] == results[1]
    assert Invoice.objects.count() == 1
    assert Invoice.objects.get().lines.count() == 1


@pytest.mark.django_db(transaction=True)
def test_beat_and_a_real_worker_close_each_due_period_once(celery_worker):
    now = timezone.now()
    # The 15th two or three months back: at least the partial first period and a full one
    # after it are due, even in a month's first hour (its last period is in its grace).
    started = (now.replace(day=1) - timedelta(days=70)).replace(day=15, hour=0, minute=0)
    subscription = subscribe(started_at=started)
    due = list(periods_due(as_of=now))
    assert len(due) >= 2
    succeed(subscription.customer, "o-1", due[1].start + timedelta(days=2))

    assert close_due_periods() == len(due)
    assert wait_for(lambda: Invoice.objects.count() == len(due)), "the worker did not close them"
    assert Invoice.objects.get(period_start=due[1].start).total == 99

    # The next beat finds nothing due, and a redelivered task changes nothing.
    assert close_due_periods() == 0
    with task_results(close_period.name) as closed:
        close_period.delay(subscription.customer_id, due[1].start.isoformat())
        wait_for(lambda: closed, what="the redelivered close to run", timeout=30)
    assert closed == [Invoice.objects.get(period_start=due[1].start).pk]  # found, not made
    assert Invoice.objects.count() == len(due)


@pytest.mark.django_db(transaction=True)
def test_close_periods_command_dry_run_lists_and_closes_nothing(capsys):
    subscribe()
    call_command("close_periods", "--as-of", "2026-11-01T02:00:00+00:00", "--dry-run")
    assert "1 period(s) due" in capsys.readouterr().out
    assert not Invoice.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_close_periods_command_closes_one_customer_as_of_a_date(capsys):
    subscribe("acme")
    other = customer_create(external_id="other")
    Subscription.objects.create(
        customer=other, plan=Subscription.objects.get().plan, started_at=OCTOBER
    )

    call_command("close_periods", "--as-of", "2026-12-01T02:00:00+00:00", "--customer", "acme")

    assert Invoice.objects.filter(customer__external_id="acme").count() == 2
    assert not Invoice.objects.filter(customer=other).exists()
    call_command("close_periods", "--as-of", "2026-12-01T02:00:00+00:00", "--customer", "acme")
    assert Invoice.objects.count() == 2


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("path", "allowed"),
    [
        (["finalized"], True),
        (["void"], True),
        (["finalized", "paid"], True),
        (["finalized", "void"], True),
        (["finalized", "uncollectible"], True),
        (["paid"], False),
        (["uncollectible"], False),
        (["finalized", "paid", "void"], False),
        (["void", "finalized"], False),
        (["finalized", "draft"], False),
    ],
)
def test_invoice_states_only_move_forward(path, allowed):
    subscription = subscribe()
    invoice = period_close(customer_id=subscription.customer_id, period_start=OCTOBER)
    *steps, last = path
    for step in steps:
        invoice_move(invoice_id=invoice.pk, status=step)
    if allowed:
        assert invoice_move(invoice_id=invoice.pk, status=last).status == last
        assert invoice_move(invoice_id=invoice.pk, status=last).status == last  # again: no-op
    else:
        with pytest.raises(ApiError):
            invoice_move(invoice_id=invoice.pk, status=last)


@pytest.mark.django_db(transaction=True)
def test_the_customer_reads_its_invoices_with_lines(client_with_key):
    subscription = subscribe()
    succeed(subscription.customer, "o-1", OCTOBER + timedelta(days=1))
    period_close(customer_id=subscription.customer_id, period_start=OCTOBER)

    [invoice] = client_with_key.get("/v1/customers/acme/invoices").json()

    assert (invoice["status"], invoice["total"], invoice["plan"]) == ("draft", 99, "support-ai")
    assert invoice["lines"][0]["description"] == "resolution: 1 outcome"


@pytest.mark.django_db(transaction=True)
def test_admin_voids_an_invoice_and_refuses_an_impossible_move(staff_client):
    subscription = subscribe()
    invoice = period_close(customer_id=subscription.customer_id, period_start=OCTOBER)
    url = "/admin/invoicing/invoice/"

    staff_client.post(url, {"action": "mark_uncollectible", "_selected_action": [invoice.pk]})
    invoice.refresh_from_db()
    assert invoice.status == "draft"  # uncollectible needs a finalized invoice

    staff_client.post(url, {"action": "void", "_selected_action": [invoice.pk]})
    invoice.refresh_from_db()
    assert invoice.status == "void"
    assert staff_client.get(f"{url}{invoice.pk}/change/").status_code == 200


@pytest.mark.django_db(transaction=True)
def test_admin_lists_negative_margins(staff_client):
    # "losing" earns one $0.99 success and burns a $5 call; "earning" earns it for free.
    for external_id, cost in (("losing", "5"), ("earning", None)):
        subscription = subscribe(external_id)
        succeed(subscription.customer, f"{external_id}-1", OCTOBER + timedelta(days=3))
        if cost:
            at = OCTOBER + timedelta(days=3)
            call = json.dumps(event_payload(external_id, cost=cost, timestamp=at.isoformat()))
            events_ingest(events=parse_event_batch(call.encode(), now=at))
        period_close(customer_id=subscription.customer_id, period_start=OCTOBER)
    assert Reconciliation.objects.get(invoice__customer__external_id="losing").margin < 0

    response = staff_client.get("/admin/analytics/reconciliation/?margin=negative")

    assert response.status_code == 200
    page = response.content.decode()
    assert "losing 2026-10-01" in page
    assert "earning 2026-10-01" not in page


@pytest.mark.django_db(transaction=True)
def test_a_berlin_customer_is_billed_by_local_month_across_dst():
    version = plan_load("p", outcomes=[{"type": "resolution", "unit_price": "1"}])
    customer = customer_create(external_id="berlin")
    march = datetime(2026, 2, 28, 23, tzinfo=UTC)  # 1 March 00:00 CET
    Subscription.objects.create(
        customer=customer, plan=version.plan, started_at=march, timezone="Europe/Berlin"
    )
    # 31 March 23:30 CEST is still March in Berlin (21:30 UTC); 1 April 00:30 CEST is not.
    succeed(customer, "last-of-march", datetime(2026, 3, 31, 21, 30, tzinfo=UTC))
    succeed(customer, "first-of-april", datetime(2026, 3, 31, 22, 30, tzinfo=UTC))

    invoice = period_close(customer_id=customer.pk, period_start=march)

    assert (invoice.period_start, invoice.period_end) == (
        march,
        datetime(2026, 3, 31, 22, tzinfo=UTC),
    )
    assert invoice.total == 100


@pytest.mark.django_db(transaction=True)
def test_closing_in_two_processes_makes_each_invoice_once(capsys):
    version = plan_load("p", base_fee="1")
    for i in range(6):
        customer = customer_create(external_id=f"c-{i}")
        Subscription.objects.create(customer=customer, plan=version.plan, started_at=OCTOBER)

    call_command("close_periods", "--as-of", "2026-11-01T02:00:00+00:00", "--processes", "2")
    call_command("close_periods", "--as-of", "2026-11-01T02:00:00+00:00", "--processes", "2")

    assert Invoice.objects.count() == 6
    assert capsys.readouterr().out.splitlines()[-1] == "0 invoice(s) made"
