"""Invoices mirrored to Stripe: the real `stripe` client talking HTTP to localstripe."""

import logging
import threading
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import stripe as stripe_sdk
from auditlog.models import LogEntry
from django.db import connection
from django.utils import timezone

from billing.credits.services import GrantRequest, grant_create
from billing.invoicing.models import Invoice
from billing.invoicing.services import period_close
from billing.plans.models import Plan, Subscription
from billing.stripe_sync import stripe_api
from billing.stripe_sync.models import StripeCustomer
from billing.stripe_sync.services.push import invoice_push, stripe_drift_check, stripe_line_terms
from billing.stripe_sync.stripe_api import StripeRefused, StripeRetryable
from billing.stripe_sync.tasks import push_invoice
from outcomes.models import Outcome
from tests.billing.factories import plan_load
from tests.metering.factories import customer_create
from tests.support.polling import wait_for

# Closes bill what their snapshot sees of committed transactions (billing/invoicing/watermark.py):
# facts and closes each commit.
pytestmark = pytest.mark.django_db(transaction=True)

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


def test_credits_applied_reach_stripe_as_a_negative_line(stripe, settings):
    settings.STRIPE_API_KEY = ""
    version = plan_load("pro", base_fee="50")
    customer = customer_create(external_id="acme", name="Acme", email="billing@acme.test")
    Subscription.objects.create(customer=customer, plan=version.plan, started_at=OCTOBER)
    grant_create(
        customer=customer,
        request=GrantRequest(amount=Decimal("12.34"), currency="USD", effective_at=OCTOBER),
    )
    invoice = period_close(customer_id=customer.pk, period_start=OCTOBER)
    settings.STRIPE_API_KEY = "sk_test_payback"

    remote = stripe_invoice(invoice_push(invoice_id=invoice.pk))

    assert remote.total == invoice.total == 5000 - 1234
    assert sorted(line.amount for line in remote.lines.data) == [-1234, 5000]
    assert "Credits applied" in {line.description for line in remote.lines.data}


def test_stripe_is_left_to_collect_the_invoice(invoice):
    pushed = invoice_push(invoice_id=invoice.pk)

    remote = stripe_invoice(pushed)
    # Finalized with auto_advance: Stripe e-mails it (send_invoice) or charges it
    # (charge_automatically); without it, Stripe does neither.
    assert remote.auto_advance is True
    assert remote.collection_method == "send_invoice" and remote.days_until_due == 30


def test_a_plan_that_charges_automatically_has_its_invoices_charged(stripe, settings):
    settings.STRIPE_API_KEY = ""
    version = plan_load("card", base_fee="10", collection_method="charge_automatically")
    customer = customer_create(external_id="card-co")
    Subscription.objects.create(customer=customer, plan=version.plan, started_at=OCTOBER)
    invoice = period_close(customer_id=customer.pk, period_start=OCTOBER)
    settings.STRIPE_API_KEY = "sk_test_payback"

    remote = stripe_invoice(invoice_push(invoice_id=invoice.pk))

    assert (remote.collection_method, remote.auto_advance) == ("charge_automatically", True)


def test_each_stripe_line_carries_its_quantity_unit_price_and_period(invoice):
    pushed = invoice_push(invoice_id=invoice.pk)

    remote = {line.description: line for line in stripe_invoice(pushed).lines.data}
    resolutions = remote["resolution: 3 outcomes"]
    assert (resolutions.quantity, resolutions.pricing.unit_amount_decimal) == (3, Decimal(99))
    assert (resolutions.period.start, resolutions.period.end) == (
        int(OCTOBER.timestamp()),
        int(datetime(2026, 11, 1, tzinfo=UTC).timestamp()),
    )
    base_fee = remote["support-ai base fee"]
    assert (base_fee.quantity, base_fee.pricing.unit_amount_decimal, base_fee.amount) == (
        1,
        Decimal(1000),
        1000,
    )


def test_the_customers_links_and_the_status_are_kept_from_the_finalize(invoice, client_with_key):
    pushed = invoice_push(invoice_id=invoice.pk)

    stored = Invoice.objects.get(pk=pushed.pk)
    assert stored.status == "finalized"  # before any webhook arrives
    assert stored.hosted_invoice_url == f"https://invoice.stripe.test/i/{stored.stripe_invoice_id}"
    assert stored.invoice_pdf.endswith(f"/invoice/{stored.stripe_invoice_id}/pdf")
    [listed] = client_with_key.get("/v1/customers/acme/invoices").json()
    assert listed["stripe_invoice_id"] == stored.stripe_invoice_id
    assert listed["hosted_invoice_url"] == stored.hosted_invoice_url
    assert listed["invoice_pdf"] == stored.invoice_pdf
    assert client_with_key.get(f"/v1/invoices/{stored.pk}").json() == listed


def test_tiers_and_their_flat_fees_reach_stripe_as_readable_lines(stripe, settings):
    """3 outcomes on graduated tiers (up to 2 at $1.00 + a $20 fee, above at $0.50 + $5):
    a line per tier (quantity x unit) and a line per flat fee (1 x the fee)."""
    settings.STRIPE_API_KEY = ""
    tiers = [{"up_to": 2, "unit_price": "1.00", "flat_fee": "20"},
             {"unit_price": "0.50", "flat_fee": "5"}]  # fmt: skip
    version = plan_load("tiered", outcomes=[{"type": "resolution", "tier_mode": "graduated",
                                             "tiers": tiers}])  # fmt: skip
    customer = customer_create(external_id="tiered", email="billing@tiered.test")
    Subscription.objects.create(customer=customer, plan=version.plan, started_at=OCTOBER)
    for i in range(3):
        at = OCTOBER + timedelta(days=i)
        Outcome.objects.create(
            external_id=f"t-{i}", customer=customer, type="resolution", status="succeeded",
            occurred_at=at, succeeded_at=at, succeeded_recorded_at=at,
        )  # fmt: skip
    closed = period_close(customer_id=customer.pk, period_start=OCTOBER)
    settings.STRIPE_API_KEY = "sk_test_payback"

    remote = stripe_invoice(invoice_push(invoice_id=closed.pk))

    assert sorted(
        (line.description, line.quantity, line.pricing.unit_amount_decimal, line.amount)
        for line in remote.lines.data
    ) == [
        ("resolution: 1 outcome (and above)", 1, Decimal(50), 50),
        ("resolution: 2 outcomes (up to 2)", 2, Decimal(100), 200),
        ("resolution: flat fee (and above)", 1, Decimal(500), 500),
        ("resolution: flat fee (up to 2)", 1, Decimal(2000), 2000),
    ]
    assert remote.total == 2750


def test_late_usage_goes_to_stripe_with_the_period_it_belongs_to(invoice, settings):
    late = OCTOBER + timedelta(days=20)
    Outcome.objects.create(
        external_id="late",
        customer=invoice.customer,
        type="resolution",
        status="succeeded",
        occurred_at=late,
        succeeded_at=late,
        succeeded_recorded_at=timezone.now(),
    )  # stored after October's close
    settings.STRIPE_API_KEY = ""
    november = period_close(
        customer_id=invoice.customer_id, period_start=datetime(2026, 11, 1, tzinfo=UTC)
    )
    settings.STRIPE_API_KEY = "sk_test_payback"

    remote = stripe_invoice(invoice_push(invoice_id=november.pk))

    late_line = next(line for line in remote.lines.data if "late usage" in line.description)
    assert (late_line.quantity, late_line.pricing.unit_amount_decimal) == (1, Decimal(99))
    assert late_line.period.start == int(OCTOBER.timestamp())


@pytest.mark.parametrize(
    ("quantity", "unit_price", "amount", "currency", "expected"),
    [
        ("21", "0.99", 2079, "USD", (21, "99", "")),
        ("-1", "0.99", -99, "USD", (1, "-99", "")),  # a credit
        ("1", "10", 1000, "USD", (1, "1000", "")),
        ("3", "150", 450, "JPY", (3, "150", "")),
        ("2", "1.2345", 2469, "KWD", (2, "1234.5", "")),  # 2.469 KWD: 2,469 fils
        # usage at cost: the quantity is the cost, not a count
        ("2.345678", "1.5", 352, "USD", (1, "352", " (2.345678 × 1.5 USD)")),
        # a fraction of a cent in the product: Stripe would round it its own way
        ("3", "0.333", 100, "USD", (1, "100", " (3 × 0.333 USD)")),
    ],
)
def test_a_line_goes_to_stripe_as_a_whole_quantity_of_an_exact_unit_amount(
    quantity, unit_price, amount, currency, expected
):
    terms = stripe_line_terms(
        quantity=Decimal(quantity), unit_price=Decimal(unit_price), amount=amount, currency=currency
    )
    assert (terms.quantity, f"{terms.unit_amount_decimal:f}", terms.note) == expected
    assert terms.quantity * terms.unit_amount_decimal == amount


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
    # The status change is in the audit log, as every other is.
    [entry] = LogEntry.objects.get_for_object(pushed).filter(changes__has_key="status")
    assert entry.changes["status"] == ["draft", "finalized"]


def test_refused_is_not_retryable():
    assert not issubclass(StripeRefused, StripeRetryable)


def test_voiding_a_pushed_invoice_voids_it_in_stripe_first(invoice, staff_client):
    pushed = invoice_push(invoice_id=invoice.pk)

    staff_client.post(
        "/admin/invoicing/invoice/", {"action": "void", "_selected_action": [pushed.pk]}
    )

    assert Invoice.objects.get(pk=pushed.pk).status == "void"
    assert stripe_invoice(pushed).status == "void"


def test_marking_uncollectible_reaches_stripe(invoice, staff_client):
    pushed = invoice_push(invoice_id=invoice.pk)

    staff_client.post(
        "/admin/invoicing/invoice/",
        {"action": "mark_uncollectible", "_selected_action": [pushed.pk]},
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
        "/admin/invoicing/invoice/", {"action": "retry_push", "_selected_action": [invoice.pk]}
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


def test_a_close_delivered_again_sends_the_push_its_first_delivery_lost(invoice, celery_worker):
    """The first close committed its invoice, then its worker died before the push was
    sent (the `invoice` fixture closes with Stripe off: nothing was sent). The close's
    redelivery finds the invoice and sends its push, which a worker runs."""
    assert invoice.push_state == "pending"

    again = period_close(customer_id=invoice.customer_id, period_start=OCTOBER)

    assert again.pk == invoice.pk
    wait_for(
        lambda: Invoice.objects.get(pk=invoice.pk).push_state == "pushed",
        what="the push to be sent",
        timeout=20,
    )
    assert Invoice.objects.get(pk=invoice.pk).stripe_invoice_id


def test_the_stripe_invoice_carries_the_link_to_its_statement(invoice, settings, client):
    settings.PUBLIC_URL = "https://billing.example.test"

    pushed = invoice_push(invoice_id=invoice.pk)

    memo = stripe_invoice(pushed).description
    assert memo.startswith("2026-10-01 – 2026-11-01. Every outcome billed: ")
    link = memo.split(": ", 1)[1]
    assert link.startswith("https://billing.example.test/statements/")
    page = client.get(link.removeprefix("https://billing.example.test"))
    assert page.status_code == 200
    assert "o-0" in page.content.decode()  # the outcomes it billed


def test_without_a_public_url_the_memo_is_the_period(invoice, settings):
    settings.PUBLIC_URL = ""

    pushed = invoice_push(invoice_id=invoice.pk)

    assert stripe_invoice(pushed).description == "2026-10-01 – 2026-11-01"


def test_the_example_books_every_charge_model_previews_closes_and_reaches_stripe(
    stripe, settings, client_with_key
):
    """The example book's `outcome-deals` plan (flat fees per tier, a percentage with a
    fixed fee and free value, a graduated percentage, a price by channel, a markup by the
    call's tier): October's preview is the invoice, and every line reaches Stripe with
    its amount, as quantity × unit or (a quantity Stripe cannot take) 1 × the amount."""
    from pathlib import Path

    from django.core.management import call_command

    from metering.models import UsageEvent

    settings.STRIPE_API_KEY = ""
    call_command("load_plans", str(Path(__file__).parents[2] / "billing/plans/examples/plans.yaml"))
    customer = customer_create(external_id="deals", email="billing@deals.test")
    Subscription.objects.create(
        customer=customer, plan_id=Plan.objects.get(code="outcome-deals").pk, started_at=OCTOBER
    )
    facts = [("resolution", None, None)] * 3 + [
        ("payment_recovered", "800", None), ("payment_recovered", "450.50", None),
        ("deal_closed", "9000", None), ("deal_closed", "2500", None),
        ("ticket_resolved", None, "voice"), ("ticket_resolved", None, "fax"),
    ]  # fmt: skip
    for n, (kind, value, channel) in enumerate(facts):
        at = OCTOBER + timedelta(days=1, hours=n)
        Outcome.objects.create(
            external_id=f"x-{n}", customer=customer, type=kind, status="succeeded",
            occurred_at=at, succeeded_at=at, succeeded_recorded_at=at, value=value,
            value_currency="USD" if value else "",
            properties={"channel": channel} if channel else {},
        )  # fmt: skip
    for n, (tier, cost) in enumerate((("premium", "1.25"), ("", "0.333"))):
        UsageEvent.objects.create(
            event_id=f"x-call-{n}", customer=customer, timestamp=OCTOBER + timedelta(days=2),
            received_at=OCTOBER + timedelta(days=2), cost=Decimal(cost), cost_source="explicit",
            tier=tier, end_user="u1" if tier else "",
        )  # fmt: skip
    preview = client_with_key.get(
        "/v1/customers/deals/usage", {"period": (OCTOBER + timedelta(days=9)).isoformat()}
    ).json()["invoice_preview"]
    closed = period_close(customer_id=customer.pk, period_start=OCTOBER)
    settings.STRIPE_API_KEY = "sk_test_payback"

    remote = stripe_invoice(invoice_push(invoice_id=closed.pk))

    lines = [(line.description, line.amount) for line in closed.lines.all()]
    assert [(line["description"], line["amount"]) for line in preview["lines"]] == lines
    assert {line.kind for line in closed.lines.all()} >= {"outcome", "tier_fee", "pass_through"}
    pushed = sorted((line.description, line.amount) for line in remote.lines.data)
    assert [amount for _, amount in pushed] == [amount for _, amount in sorted(lines)]
    assert all(
        remote_text.startswith(text)
        for (remote_text, _), (text, _) in zip(pushed, sorted(lines), strict=True)
    )
    assert remote.total == closed.total > 0
