"""Credits bought through Stripe: a top-up is a Stripe invoice charged automatically (the
real `stripe` client against localstripe), its grant is made when Stripe's signed webhook
says it is paid, once; auto top-ups fire once per threshold crossing; bought credits
used by an invoice are revenue then, and what they still hold is a liability."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import stripe as stripe_sdk
from django.utils import timezone

from billing.analytics.models import Reconciliation
from billing.credits.models import AutoTopUp, CreditGrant, GrantKind, TopUp, TopUpStatus
from billing.credits.services import GrantRequest, grant_create, top_up_create, top_up_paid
from billing.invoicing.services import period_close
from billing.limits.services import auto_top_ups_check
from billing.plans.models import LineKind, Subscription
from billing.stripe_sync import stripe_api
from billing.stripe_sync.models import StripeEvent
from billing.stripe_sync.services.top_ups import top_up_push
from billing.stripe_sync.services.webhooks import stripe_event_process
from billing.stripe_sync.tasks import push_top_up
from tests.billing.factories import plan_load
from tests.metering.factories import customer_create
from tests.support.stripe_webhooks import SECRET, deliver, event

pytestmark = pytest.mark.django_db(transaction=True)

OCTOBER = datetime(2026, 10, 1, tzinfo=UTC)


@pytest.fixture
def acme(settings):
    settings.STRIPE_WEBHOOK_SECRETS = [SECRET]
    version = plan_load("pro", base_fee="50")
    customer = customer_create(external_id="acme", name="Acme", email="billing@acme.test")
    Subscription.objects.create(customer=customer, plan=version.plan, started_at=OCTOBER)
    return customer


def remote(top_up: TopUp):
    client = stripe_sdk.StripeClient(
        "sk_test_payback", base_addresses={"api": stripe_api.settings.STRIPE_API_BASE}
    )
    return client.v1.invoices.retrieve(top_up.stripe_invoice_id)


def paid_webhook(top_up: TopUp, event_id: str = "evt_paid") -> None:
    assert deliver(event(event_id, "invoice.paid", top_up.stripe_invoice_id)).status_code == 200
    for stored in StripeEvent.objects.filter(processed_at__isnull=True).order_by("pk"):
        stripe_event_process(event_id=stored.pk)


def test_a_top_up_is_a_stripe_invoice_charged_automatically(stripe, acme, client_with_key):
    made = client_with_key.post(
        "/v1/customers/acme/credits/top-ups", {"id": "buy-1", "amount": "25"}, format="json"
    )
    assert made.status_code == 202, made.content
    assert made.json()["status"] == "pending"

    top_up = top_up_push(top_up_id=TopUp.objects.get(external_id="buy-1").pk)

    assert top_up.status == TopUpStatus.OPEN
    invoice = remote(top_up)
    assert invoice.collection_method == "charge_automatically"
    assert invoice.total == 2500
    assert invoice.metadata["payback_top_up"] == str(top_up.pk)
    assert top_up_push(top_up_id=top_up.pk).stripe_invoice_id == top_up.stripe_invoice_id


def test_the_grant_is_made_when_stripe_says_paid_and_only_once(stripe, acme):
    top_up, _ = top_up_create(customer=acme, amount=Decimal(25), currency="USD")
    top_up = top_up_push(top_up_id=top_up.pk)

    paid_webhook(top_up, "evt_1")
    paid_webhook(top_up, "evt_2")  # Stripe sends invoice.paid and payment_succeeded alike

    top_up.refresh_from_db()
    assert top_up.status == TopUpStatus.PAID
    grants = CreditGrant.objects.filter(customer=acme)
    assert [(g.kind, g.amount) for g in grants] == [(GrantKind.PAID, Decimal(25))]
    assert top_up.grant_id == grants[0].pk


def test_a_retried_top_up_is_the_same_one_and_other_terms_are_refused(acme, client_with_key):
    path = "/v1/customers/acme/credits/top-ups"
    first = client_with_key.post(path, {"id": "buy-1", "amount": "25"}, format="json")
    again = client_with_key.post(path, {"id": "buy-1", "amount": "25"}, format="json")
    other = client_with_key.post(path, {"id": "buy-1", "amount": "30"}, format="json")
    bad = client_with_key.post(path, {"amount": "0.001"}, format="json")

    assert (first.status_code, again.status_code, other.status_code) == (202, 200, 409)
    assert bad.status_code == 400 and bad.json()["errors"][0]["field"] == "amount"
    assert TopUp.objects.count() == 1


def test_bought_credits_used_by_an_invoice_are_revenue_and_free_ones_a_discount(acme):
    top_up, _ = top_up_create(customer=acme, amount=Decimal(30), currency="USD")
    top_up_paid(top_up_id=top_up.pk, at=OCTOBER)
    grant_create(
        customer=acme,
        request=GrantRequest(amount=Decimal(10), currency="USD", effective_at=OCTOBER, priority=1),
    )

    invoice = period_close(customer_id=acme.pk, period_start=OCTOBER)

    assert [(line.kind, line.amount) for line in invoice.lines.all()] == [
        (LineKind.BASE_FEE, 5000),
        (LineKind.PREPAID_APPLIED, -3000),
        (LineKind.CREDITS_APPLIED, -1000),
    ]
    assert invoice.total == 1000
    # $30 of bought credits are revenue now; the $10 of free ones are a discount.
    assert Reconciliation.objects.get(invoice=invoice).revenue == Decimal(40)


def test_the_liability_is_what_bought_credits_still_hold(acme, client_with_key):
    top_up, _ = top_up_create(customer=acme, amount=Decimal(80), currency="USD")
    top_up_paid(top_up_id=top_up.pk, at=OCTOBER)
    period_close(customer_id=acme.pk, period_start=OCTOBER)  # uses $50 of them

    answer = client_with_key.get("/v1/credits/liability")

    assert answer.json() == [{"currency": "USD", "liability": "30"}]


def test_an_auto_top_up_fires_once_per_crossing_of_its_threshold(acme, client_with_key):
    started = timezone.now() - timedelta(days=2)
    Subscription.objects.filter(customer=acme).update(started_at=started)
    set_up = client_with_key.put(
        "/v1/customers/acme/credits/auto-top-up", {"threshold": "20", "amount": "50"}, format="json"
    )
    assert set_up.status_code == 200, set_up.content
    now = timezone.now()

    # Available: $0 of credits less the $50 base fee the period bills: below $20.
    assert auto_top_ups_check(now=now) == 1
    assert auto_top_ups_check(now=now) == 0  # still below, not paid yet: not again
    bought = TopUp.objects.get(customer=acme, auto=True)
    assert bought.amount == Decimal(50)
    top_up_paid(top_up_id=bought.pk, at=started)
    grant_create(
        customer=acme,
        request=GrantRequest(amount=Decimal(100), currency="USD", effective_at=started),
    )
    assert auto_top_ups_check(now=now) == 0  # back above ($150 - $50): armed again
    assert AutoTopUp.objects.get(customer=acme).armed is True
    removed = client_with_key.delete("/v1/customers/acme/credits/auto-top-up")
    assert removed.status_code == 204
    assert not AutoTopUp.objects.exists()


def test_a_top_up_stripe_refuses_is_failed_and_one_it_cannot_reach_is_retried(
    stripe, acme, settings
):
    settings.STRIPE_PUSH_BACKOFF_SECONDS = 0
    refused, _ = top_up_create(customer=acme, amount=Decimal(25), currency="USD")
    stripe.fail_next(status=400)
    assert push_top_up.apply(args=[refused.pk]).get() == TopUpStatus.FAILED
    refused.refresh_from_db()
    assert "400" in refused.push_error and refused.grant_id is None

    retried, _ = top_up_create(customer=acme, amount=Decimal(25), currency="USD")
    stripe.fail_next(status=503, count=2)  # the task retries through it
    assert push_top_up.apply(args=[retried.pk]).get() == TopUpStatus.OPEN
    assert remote(TopUp.objects.get(pk=retried.pk)).total == 2500
