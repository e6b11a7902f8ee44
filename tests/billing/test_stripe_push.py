"""Invoices mirrored to Stripe: the real `stripe` client talking HTTP to localstripe."""

import logging
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
import stripe as stripe_sdk
from django.db import connection

from billing.integrations import stripe as stripe_api
from billing.integrations.stripe import StripeRefused, StripeRetryable
from billing.models import Invoice, StripeCustomer, Subscription
from billing.services.invoicing import period_close
from billing.services.stripe_push import invoice_push, stripe_drift_check
from billing.tasks import push_invoice
from outcomes.models import Outcome
from tests.billing.factories import plan_load
from tests.metering.factories import customer_create

pytestmark = pytest.mark.django_db

OCTOBER = datetime(2026, 10, 1, tzinfo=UTC)


@pytest.fixture
def invoice(stripe, settings):
    settings.STRIPE_API_KEY = ""  # closes below do not push by themselves
    version = plan_load(
        "support-ai", base_fee="10", outcomes=[{"type": "resolution", "unit_price": "0.99"}]
    )
    customer = customer_create(external_id="acme", name="Acme", email="billing@acme.test")
    Subscription.objects.create(customer=customer, plan=version.plan, started_at=OCTOBER)
    for i in range(3):
        at = OCTOBER + timedelta(days=i)
        Outcome.objects.create(
            external_id=f"o-{i}",
            customer=customer,
            type="resolution",
            status="succeeded",
            occurred_at=at,
            succeeded_at=at,
            succeeded_recorded_at=at,
        )
    invoice = period_close(customer_id=customer.pk, period_start=OCTOBER)
    settings.STRIPE_API_KEY = "sk_test_payback"
    return invoice


def stripe_invoice(invoice):
    client = stripe_sdk.StripeClient(
        "sk_test_payback", base_addresses={"api": stripe_api.settings.STRIPE_API_BASE}
    )
    return client.v1.invoices.retrieve(invoice.stripe_invoice_id)


def test_an_invoice_reaches_stripe_with_its_lines_and_is_finalized(invoice):
    pushed = invoice_push(invoice_id=invoice.pk)

    assert (pushed.push_state, pushed.status) == ("pushed", "finalized")
    remote = stripe_invoice(pushed)
    assert remote.status == "open"
    assert remote.total == invoice.total == 1000 + 297
    assert sorted(line.amount for line in remote.lines.data) == [297, 1000]
    assert remote.metadata["payback_invoice"] == str(invoice.pk)
    customer = StripeCustomer.objects.get(customer=invoice.customer)
    assert remote.customer == customer.stripe_id
    assert all(line.stripe_item_id for line in pushed.lines.all())


def test_pushing_again_makes_nothing_new_in_stripe(invoice, stripe):
    invoice_push(invoice_id=invoice.pk)
    writes = stripe.writes()

    invoice_push(invoice_id=invoice.pk)
    push_invoice.apply(args=[invoice.pk])

    assert stripe.writes() == writes


def test_a_crash_after_stripe_answered_is_retried_without_a_second_object(invoice, stripe):
    # As if a first attempt made the Stripe invoice and died before storing its id.
    customer_id = stripe_api.customer_create(
        customer_pk=invoice.customer.pk, external_id="acme", name="Acme", email=""
    )
    lost = stripe_api.invoice_create(
        invoice_pk=invoice.pk,
        stripe_customer=customer_id,
        collection_method="send_invoice",
        days_until_due=30,
        description="",
    )
    before = stripe.writes()

    pushed = invoice_push(invoice_id=invoice.pk)

    assert pushed.stripe_invoice_id == lost  # the same key gave back the same invoice
    assert StripeCustomer.objects.get().stripe_id == customer_id
    after = stripe.writes()
    assert after.get("invoices", 0) == before.get("invoices", 0) + 1  # only the finalize
    assert after.get("customers") == before.get("customers")


def test_a_stripe_500_is_retryable_and_the_retry_completes_the_push(invoice, stripe):
    stripe.fail_next(status=500)
    with pytest.raises(StripeRetryable):
        invoice_push(invoice_id=invoice.pk)
    assert Invoice.objects.get(pk=invoice.pk).push_state == "pushing"

    assert invoice_push(invoice_id=invoice.pk).push_state == "pushed"
    assert stripe_invoice(Invoice.objects.get(pk=invoice.pk)).total == 1297


def test_a_429_carries_stripes_retry_after(invoice, stripe):
    stripe.fail_next(status=429, retry_after=7)
    with pytest.raises(StripeRetryable) as failure:
        invoice_push(invoice_id=invoice.pk)
    assert failure.value.retry_after == 7


def test_a_timeout_is_retryable(invoice, stripe):
    stripe.fail_next(delay=3)  # the client gives up after 2 s
    with pytest.raises(StripeRetryable):
        invoice_push(invoice_id=invoice.pk)


def test_a_4xx_is_not_retried_and_marks_the_invoice_failed(invoice, stripe, caplog):
    stripe.fail_next(status=400)
    with caplog.at_level(logging.ERROR):
        assert push_invoice.apply(args=[invoice.pk]).get() == "failed"
    failed = Invoice.objects.get(pk=invoice.pk)
    assert failed.push_state == "failed" and "400" in failed.push_error
    assert "ALERT" in caplog.text


def test_the_task_retries_then_gives_up_and_alerts(invoice, stripe, settings, caplog):
    settings.STRIPE_PUSH_MAX_RETRIES = 2
    settings.STRIPE_PUSH_BACKOFF_SECONDS = 0
    stripe.fail_next(status=503, count=10)
    with caplog.at_level(logging.ERROR):
        assert push_invoice.apply(args=[invoice.pk]).get() == "failed"
    assert Invoice.objects.get(pk=invoice.pk).push_state == "failed"
    assert "after 2 retries" in caplog.text
    stripe.fail_next(count=0)


def test_the_task_retries_through_a_passing_fault(invoice, stripe, settings):
    settings.STRIPE_PUSH_BACKOFF_SECONDS = 0
    stripe.fail_next(status=500, count=2)
    assert push_invoice.apply(args=[invoice.pk]).get() == "pushed"


def test_a_zero_invoice_is_not_sent_by_default(stripe, settings):
    version = plan_load("free", outcomes=[{"type": "resolution", "unit_price": "1"}])
    customer = customer_create(external_id="free-co")
    Subscription.objects.create(customer=customer, plan=version.plan, started_at=OCTOBER)
    settings.STRIPE_API_KEY = ""
    invoice = period_close(customer_id=customer.pk, period_start=OCTOBER)
    settings.STRIPE_API_KEY = "sk_test_payback"
    before = stripe.writes()

    pushed = invoice_push(invoice_id=invoice.pk)

    assert (pushed.push_state, pushed.status, pushed.total) == ("not_sent", "finalized", 0)
    assert stripe.writes() == before


def test_refused_is_not_retryable():
    assert not issubclass(StripeRefused, StripeRetryable)


def test_voiding_a_pushed_invoice_voids_it_in_stripe_first(invoice, staff_client):
    pushed = invoice_push(invoice_id=invoice.pk)

    staff_client.post(
        "/admin/billing/invoice/", {"action": "void", "_selected_action": [pushed.pk]}
    )

    assert Invoice.objects.get(pk=pushed.pk).status == "void"
    assert stripe_invoice(pushed).status == "void"


def test_marking_uncollectible_reaches_stripe(invoice, staff_client):
    pushed = invoice_push(invoice_id=invoice.pk)

    staff_client.post(
        "/admin/billing/invoice/", {"action": "mark_uncollectible", "_selected_action": [pushed.pk]}
    )

    assert Invoice.objects.get(pk=pushed.pk).status == "uncollectible"
    assert stripe_invoice(pushed).status == "uncollectible"


def test_the_drift_check_lists_an_invoice_that_differs_from_stripe(invoice):
    pushed = invoice_push(invoice_id=invoice.pk)
    assert stripe_drift_check(since=OCTOBER) == 0
    # Someone voids it in the Stripe dashboard, and the webhook never arrives.
    stripe_api.invoice_void(invoice_pk=pushed.pk, stripe_invoice=pushed.stripe_invoice_id)

    assert stripe_drift_check(since=OCTOBER) == 1
    drifted = Invoice.objects.get(pk=pushed.pk)
    assert drifted.drift == "status: Stripe void, here finalized"
    assert drifted.drift_checked_at is not None


def test_the_admin_queues_a_failed_push_again(invoice, staff_client, stripe):
    stripe.fail_next(status=400)
    push_invoice.apply(args=[invoice.pk])
    assert Invoice.objects.get(pk=invoice.pk).push_state == "failed"

    response = staff_client.post(
        "/admin/billing/invoice/", {"action": "retry_push", "_selected_action": [invoice.pk]}
    )

    assert response.status_code == 302
    push_invoice.apply(args=[invoice.pk])  # what the queued task does
    assert Invoice.objects.get(pk=invoice.pk).push_state == "pushed"


def test_the_request_limiter_holds_the_rate():
    limiter = stripe_api.RequestLimiter(rate=100)
    started = time.monotonic()
    for _ in range(150):  # a burst of 100, then 50 more at 100 a second
        limiter.acquire()
    assert time.monotonic() - started >= 0.45


def test_a_zero_rate_does_not_limit():
    limiter = stripe_api.RequestLimiter(rate=0)
    started = time.monotonic()
    for _ in range(1000):
        limiter.acquire()
    assert time.monotonic() - started < 0.5


@pytest.mark.django_db(transaction=True)
def test_two_closes_at_once_make_one_invoice_and_one_stripe_invoice(stripe, settings):
    settings.STRIPE_API_KEY = ""  # push by hand below, as the two queued tasks would
    version = plan_load("p", base_fee="10")
    customer = customer_create(external_id="twice")
    Subscription.objects.create(customer=customer, plan=version.plan, started_at=OCTOBER)
    barrier = threading.Barrier(2)
    closed = []

    def close():
        try:
            barrier.wait()
            closed.append(period_close(customer_id=customer.pk, period_start=OCTOBER).pk)
        finally:
            connection.close()

    threads = [threading.Thread(target=close) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    settings.STRIPE_API_KEY = "sk_test_payback"
    before = stripe.writes()
    for invoice_id in closed:  # both deliveries of a push, one per close that ran
        push_invoice.apply(args=[invoice_id])

    assert len(set(closed)) == 1 and Invoice.objects.count() == 1
    after = stripe.writes()
    # one customer, one invoice (created, then finalized), one item: nothing twice
    assert after.get("invoices", 0) - before.get("invoices", 0) == 2
    assert after.get("customers", 0) - before.get("customers", 0) == 1
    assert after.get("invoiceitems", 0) - before.get("invoiceitems", 0) == 1
