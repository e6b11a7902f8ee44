"""POST /v1/webhooks/stripe: stored raw, verified (two secrets while rotating), processed
once per Stripe event id, statuses never moving backwards."""

import hashlib
import hmac
import json
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.utils import timezone
from rest_framework.test import APIClient

from billing.invoicing.models import Invoice
from billing.invoicing.services import invoice_move, period_close
from billing.plans.models import Subscription
from billing.stripe_sync.models import StripeEvent, StripeWebhookDelivery
from billing.stripe_sync.services.webhooks import stripe_event_process
from billing.stripe_sync.tasks import prune_stripe_deliveries
from tests.billing.factories import plan_load
from tests.metering.factories import customer_create
from tests.support.stripe_webhooks import SECRET, deliver, event

OLD_SECRET = "whsec_previous"
OCTOBER = datetime(2026, 10, 1, tzinfo=UTC)


@pytest.fixture(autouse=True)
def secrets(settings):
    settings.STRIPE_WEBHOOK_SECRETS = [SECRET, OLD_SECRET]


@pytest.fixture
def invoice(db):
    version = plan_load("p", base_fee="10")
    customer = customer_create(external_id="acme")
    Subscription.objects.create(customer=customer, plan=version.plan, started_at=OCTOBER)
    invoice = period_close(customer_id=customer.pk, period_start=OCTOBER)
    Invoice.objects.filter(pk=invoice.pk).update(stripe_invoice_id="in_test_1")
    invoice_move(invoice_id=invoice.pk, status="finalized")
    return Invoice.objects.get(pk=invoice.pk)


def process_all():
    for stored in StripeEvent.objects.filter(processed_at__isnull=True).order_by("pk"):
        stripe_event_process(event_id=stored.pk)


@pytest.mark.django_db(transaction=True)
def test_a_signed_payment_marks_the_invoice_paid(invoice):
    response = deliver(event("evt_1", "invoice.paid"))

    assert response.status_code == 200
    assert response.json() == {"received": True, "duplicate": False}
    process_all()
    assert Invoice.objects.get(pk=invoice.pk).status == "paid"


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "signing",
    [
        {"secret": "whsec_forged"},
        {"timestamp": int(time.time()) - 301},  # outside the 300 s tolerance
    ],
)
def test_a_forged_or_stale_signature_is_refused_and_changes_nothing(invoice, signing):
    response = deliver(event("evt_1", "invoice.paid"), **signing)

    assert response.status_code == 400
    assert response.json()["errors"][0]["code"] == "invalid_signature"
    assert not StripeEvent.objects.exists()
    assert Invoice.objects.get(pk=invoice.pk).status == "finalized"
    refused = StripeWebhookDelivery.objects.get()  # kept for diagnosis, with why
    assert (refused.verified, refused.event) == (False, None)
    assert "verif" in refused.refusal or "timestamp" in refused.refusal


@pytest.mark.django_db(transaction=True)
def test_a_missing_signature_is_refused(invoice):
    body = json.dumps(event("evt_1", "invoice.paid")).encode()
    response = APIClient().post("/v1/webhooks/stripe", body, content_type="application/json")
    assert response.status_code == 400
    assert not StripeEvent.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_the_previous_secret_still_verifies_during_a_rotation(invoice):
    assert deliver(event("evt_1", "invoice.paid"), secret=OLD_SECRET).status_code == 200


@pytest.mark.django_db(transaction=True)
def test_the_same_event_twice_is_processed_once(invoice):
    deliver(event("evt_1", "invoice.paid"))
    second = deliver(event("evt_1", "invoice.paid"))

    assert second.json() == {"received": True, "duplicate": True}
    assert StripeEvent.objects.count() == 1
    assert StripeWebhookDelivery.objects.filter(verified=True).count() == 2
    process_all()
    stored = StripeEvent.objects.get()
    processed_at = stored.processed_at
    stripe_event_process(event_id=stored.pk)  # a redelivered task
    assert StripeEvent.objects.get().processed_at == processed_at


@pytest.mark.django_db(transaction=True)
def test_the_same_event_delivered_concurrently_is_stored_once(invoice):
    barrier = threading.Barrier(8)
    answers = []

    def post():
        try:
            barrier.wait()
            answers.append(deliver(event("evt_race", "invoice.paid")).status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=post) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert answers == [200] * 8
    assert StripeEvent.objects.filter(stripe_id="evt_race").count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_stale_payment_failed_after_paid_leaves_it_paid(invoice):
    deliver(event("evt_paid", "invoice.paid"))
    deliver(event("evt_failed", "invoice.payment_failed"))
    deliver(event("evt_void", "invoice.voided"))
    process_all()

    assert Invoice.objects.get(pk=invoice.pk).status == "paid"
    outcomes = dict(StripeEvent.objects.values_list("stripe_id", "outcome"))
    assert outcomes["evt_void"].startswith("stale")


@pytest.mark.django_db(transaction=True)
def test_out_of_order_finalized_after_paid_does_not_reopen(invoice):
    deliver(event("evt_paid", "invoice.paid"))
    deliver(event("evt_final", "invoice.finalized"))
    process_all()
    assert Invoice.objects.get(pk=invoice.pk).status == "paid"


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("event_type", "status"),
    [
        ("invoice.voided", "void"),
        ("invoice.marked_uncollectible", "uncollectible"),
        ("invoice.payment_failed", "finalized"),
    ],
)
def test_invoice_events_move_the_local_status(invoice, event_type, status):
    deliver(event("evt_1", event_type))
    process_all()
    assert Invoice.objects.get(pk=invoice.pk).status == status


@pytest.mark.django_db(transaction=True)
def test_an_event_for_an_unknown_invoice_is_recorded_and_ignored(invoice):
    deliver(event("evt_1", "invoice.paid", stripe_invoice="in_elsewhere"))
    process_all()
    assert StripeEvent.objects.get().outcome.startswith("ignored")


@pytest.mark.django_db(transaction=True)
def test_paid_before_the_local_finalize_is_committed_still_lands(invoice):
    Invoice.objects.filter(pk=invoice.pk).update(status="draft")  # the push is mid-way
    deliver(event("evt_1", "invoice.paid"))
    process_all()
    assert Invoice.objects.get(pk=invoice.pk).status == "paid"


@pytest.mark.django_db(transaction=True)
def test_a_signature_from_the_future_is_refused(invoice):
    response = deliver(event("evt_1", "invoice.paid"), timestamp=int(time.time()) + 301)

    assert response.status_code == 400
    assert response.json()["errors"][0]["code"] == "invalid_signature"
    assert not StripeEvent.objects.exists()


def post_signed_body(body: bytes, secret: str = SECRET):
    timestamp = int(time.time())
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return APIClient().post(
        "/v1/webhooks/stripe",
        body,
        content_type="application/json",
        HTTP_STRIPE_SIGNATURE=f"t={timestamp},v1={digest.hexdigest()}",
    )


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b'{"id": "evt_1", "type": "invoice.paid", "x": "\xff\xfe"}', "invalid_body"),
        (b"not json at all", "invalid_body"),
        (b'[{"id": "evt_1", "type": "invoice.paid"}]', "invalid_body"),
        (b'{"id": "evt_1", "object": "event"}', "invalid_body"),
    ],
)
def test_a_signed_body_that_is_not_an_event_is_refused(invoice, body, code):
    response = post_signed_body(body)

    assert response.status_code == 400, response.content
    assert response.json()["errors"][0]["code"] == code
    assert not StripeEvent.objects.exists()
    assert not StripeWebhookDelivery.objects.filter(verified=True).exists()


@pytest.mark.django_db(transaction=True)
def test_unsigned_bodies_store_next_to_nothing(invoice, settings):
    settings.STRIPE_WEBHOOK_REFUSALS_KEPT = 5
    big = b'{"id": "evt_x", "type": "invoice.paid", "pad": "' + b"x" * (512 * 1024) + b'"}'
    for _ in range(8):
        response = APIClient().post(
            "/v1/webhooks/stripe", big, content_type="application/json",
            HTTP_STRIPE_SIGNATURE="t=1,v1=00",
        )  # fmt: skip
        assert response.status_code == 400

    refusals = StripeWebhookDelivery.objects.all()
    assert refusals.count() == 5  # the newest only
    assert all(r.size == len(big) and len(r.body) <= 2048 for r in refusals)


@pytest.mark.django_db(transaction=True)
def test_a_body_larger_than_any_stripe_event_is_refused_before_it_is_read(invoice, settings):
    settings.STRIPE_WEBHOOK_MAX_BODY_BYTES = 1024 * 1024
    response = APIClient().post(
        "/v1/webhooks/stripe", b"x" * (9 * 1024 * 1024), content_type="application/json",
        HTTP_STRIPE_SIGNATURE="t=1,v1=00",
    )  # fmt: skip

    assert response.status_code == 413
    assert not StripeWebhookDelivery.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_the_endpoint_is_rate_limited_per_address(invoice, settings):
    settings.STRIPE_WEBHOOK_RATE_LIMIT = "3/m"
    statuses = [
        APIClient().post(
            "/v1/webhooks/stripe", b"{}", content_type="application/json",
            HTTP_STRIPE_SIGNATURE="t=1,v1=00", REMOTE_ADDR="203.0.113.9",
        ).status_code
        for _ in range(4)
    ]  # fmt: skip

    assert statuses == [400, 400, 400, 429]
    other = APIClient().post(
        "/v1/webhooks/stripe", b"{}", content_type="application/json",
        HTTP_STRIPE_SIGNATURE="t=1,v1=00", REMOTE_ADDR="203.0.113.10",
    )  # fmt: skip
    assert other.status_code == 400


@pytest.mark.django_db(transaction=True)
def test_processed_deliveries_are_pruned_after_the_retention(invoice, settings):
    settings.STRIPE_WEBHOOK_RETENTION_DAYS = 30
    deliver(event("evt_old", "invoice.finalized"))
    deliver(event("evt_new", "invoice.paid"))
    process_all()
    StripeEvent.objects.filter(stripe_id="evt_old").update(
        processed_at=timezone.now() - timedelta(days=31)
    )
    APIClient().post(
        "/v1/webhooks/stripe", b"{}", content_type="application/json",
        HTTP_STRIPE_SIGNATURE="t=1,v1=00",
    )  # fmt: skip
    StripeWebhookDelivery.objects.filter(verified=False).update(
        received_at=timezone.now() - timedelta(days=31)
    )

    assert prune_stripe_deliveries.apply().get() == 2

    assert list(StripeWebhookDelivery.objects.values_list("event__stripe_id", flat=True)) == [
        "evt_new"
    ]
    assert StripeEvent.objects.count() == 2  # the record of what was applied stays
