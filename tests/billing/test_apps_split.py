"""Migrations that keep the data. billing became a package of apps (plans, invoicing,
stripe_sync, analytics) without touching a row: a database that holds data written by
the one-app layout, migrated forward, shows every row through the new apps' models, and
what points at the old models' content types (an operator's permission) points at the
new ones. Data of older paybacks is decided by a migration, not by a branch in the code."""

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission, User
from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from billing.analytics.models import Reconciliation
from billing.analytics.selectors import invoices_unreconciled
from billing.analytics.tasks import reconcile_missing
from billing.invoicing.models import FxRate, Invoice, InvoiceLine, InvoiceStatus
from billing.plans.models import Subscription
from billing.stripe_sync.models import StripeCustomer, StripeWebhookDelivery
from metering.schemas import parse_event_batch
from metering.services import events_ingest
from tests.billing.factories import plan_load
from tests.metering.factories import customer_create, event_payload

REFUSAL = "stored before payback verified first; not verified"

pytestmark = pytest.mark.django_db

ONE_APP = ("billing", "0008_webhook_refusals")  # the last migration of the one-app layout
# Back to it: billing's state move undone, and the new apps' migrations (None: all of them).
BEFORE_THE_SPLIT = [
    ONE_APP,
    *((app, None) for app in ("analytics", "stripe_sync", "invoicing", "plans")),
]
OCTOBER, NOVEMBER = datetime(2026, 10, 1, tzinfo=UTC), datetime(2026, 11, 1, tzinfo=UTC)


def _invoice_of_an_older_payback(
    apps, customer_id: int, *, plans: str, invoicing: str, currency: str
) -> tuple[object, object]:
    """A $49 (or €49) invoice for October, finalized, written through the historical
    models of an older payback (`plans` and `invoicing`: the apps that held them then).
    Returns (subscription, invoice)."""
    plan, _ = apps.get_model(plans, "Plan").objects.get_or_create(code="pro", name="Pro")
    version, _ = apps.get_model(plans, "PlanVersion").objects.get_or_create(
        plan=plan, version=1, currency=currency, base_fee=Decimal("49")
    )
    subscription = apps.get_model(plans, "Subscription").objects.create(
        customer_id=customer_id, plan=plan, premium_seats=3
    )
    invoice = apps.get_model(invoicing, "Invoice").objects.create(
        customer_id=customer_id,
        period_start=OCTOBER,
        period_end=NOVEMBER,
        plan_version=version,
        currency=currency,
        total=4900,
        status="finalized",
        closed_at=NOVEMBER,
        stripe_invoice_id=f"in_old_{customer_id}",
    )
    return subscription, invoice


def _rows_of_the_one_app_layout(apps, customer_id: int) -> dict[str, int]:
    """Rows written through billing's own historical models, as an older payback did."""
    subscription, invoice = _invoice_of_an_older_payback(
        apps, customer_id, plans="billing", invoicing="billing", currency="EUR"
    )
    apps.get_model("billing", "InvoiceLine").objects.create(
        invoice=invoice,
        position=1,
        kind="base_fee",
        description="Pro",
        quantity=1,
        unit_price=49,
        amount=4900,
    )
    apps.get_model("billing", "Reconciliation").objects.create(
        invoice=invoice, revenue=49, inference_cost=12, calls=7, unpriced_calls=0
    )
    apps.get_model("billing", "StripeCustomer").objects.create(
        customer_id=customer_id, stripe_id="cus_old"
    )
    apps.get_model("billing", "FxRate").objects.create(
        currency="EUR", effective_from=OCTOBER, usd_per_unit=Decimal("1.08")
    )
    return {"subscription": subscription.pk, "invoice": invoice.pk}


def test_rows_and_permissions_of_the_one_app_layout_survive_the_split():
    customer = customer_create(external_id="acme")
    operator = User.objects.create_user("operator", is_staff=True)
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE_THE_SPLIT)
    try:
        ContentType.objects.clear_cache()
        # An operator was allowed to void invoices under the old app label.
        old_type = ContentType.objects.get(app_label="billing", model="invoice")
        operator.user_permissions.add(
            Permission.objects.get(content_type=old_type, codename="void_invoice")
        )
        state = executor.loader.project_state([ONE_APP])
        written = _rows_of_the_one_app_layout(state.apps, customer.pk)
        # As if committed, as an older payback's rows are: their foreign keys checked now,
        # or PostgreSQL refuses the later migrations' ALTER TABLE on these tables.
        with connection.cursor() as cursor:
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate(executor.loader.graph.leaf_nodes())
        ContentType.objects.clear_cache()

    invoice = Invoice.objects.get(pk=written["invoice"])
    assert (invoice.customer_id, invoice.total, invoice.status) == (
        customer.pk,
        4900,
        InvoiceStatus.FINALIZED,
    )
    assert invoice.plan_version.plan.code == "pro"
    assert [(line.kind, line.amount) for line in invoice.lines.all()] == [("base_fee", 4900)]
    assert Reconciliation.objects.get(invoice=invoice).inference_cost == Decimal(12)
    assert Subscription.objects.get(pk=written["subscription"]).premium_seats == 3
    assert StripeCustomer.objects.get(customer=customer).stripe_id == "cus_old"
    assert FxRate.objects.get(currency="EUR").usd_per_unit == Decimal("1.08")
    # The same content type row, renamed: the permission granted on it holds.
    assert ContentType.objects.get(app_label="invoicing", model="invoice").pk == old_type.pk
    assert not ContentType.objects.filter(app_label="billing", model="invoice").exists()
    assert User.objects.get(pk=operator.pk).has_perm("invoicing.void_invoice")


@pytest.mark.django_db(transaction=True)  # each migration commits, as in a real upgrade
def test_deliveries_stored_before_verify_first_become_verified_or_refused():
    """No code has a third case for deliveries that older paybacks stored unchecked
    (verified NULL): migrated, one that carried an event is verified, one that did not is
    a refusal that says why."""
    executor = MigrationExecutor(connection)
    executor.migrate([("stripe_sync", "0001_initial")])
    try:
        apps = executor.loader.project_state([("stripe_sync", "0001_initial")]).apps
        event = apps.get_model("stripe_sync", "StripeEvent").objects.create(
            stripe_id="evt_old", type="invoice.paid", payload={}
        )
        deliveries = apps.get_model("stripe_sync", "StripeWebhookDelivery").objects
        carried = deliveries.create(body=b"{}", verified=None, event=event).pk
        refused = deliveries.create(body=b"{}", verified=None).pk
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate(executor.loader.graph.leaf_nodes())

    assert StripeWebhookDelivery.objects.get(pk=carried).verified is True
    refusal = StripeWebhookDelivery.objects.get(pk=refused)
    assert (refusal.verified, refusal.refusal) == (False, REFUSAL)


@pytest.mark.django_db(transaction=True)  # each migration commits, as in a real upgrade
def test_invoices_closed_before_margin_rows_get_one_and_the_sweep_finishes_them():
    """An invoice an older payback closed without its Reconciliation row gets one from the
    migration, as a close would have written it; the sweep that makes missing breakdowns
    then finishes it (before, it chose that invoice every run and never could)."""
    customer = customer_create(external_id="acme")
    executor = MigrationExecutor(connection)
    # The payback of then: margins without rows for old invoices, plans without credits.
    then = [("analytics", "0001_initial"), ("plans", "0001_initial")]
    executor.migrate(then)
    try:
        apps = executor.loader.project_state(then).apps
        _, old = _invoice_of_an_older_payback(
            apps, customer.pk, plans="plans", invoicing="invoicing", currency="USD"
        )
        _, quiet = _invoice_of_an_older_payback(
            apps,
            customer_create(external_id="quiet").pk,
            plans="plans",
            invoicing="invoicing",
            currency="USD",
        )
        at = OCTOBER + timedelta(days=3)
        calls = [
            event_payload("acme", cost="1", timestamp=at.isoformat()),
            event_payload("acme", cost="2", timestamp=at.isoformat()),
            event_payload("acme", model="no-such-model", timestamp=at.isoformat()),
        ]
        events_ingest(events=parse_event_batch(json.dumps({"events": calls}).encode(), now=at))
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate(executor.loader.graph.leaf_nodes())

    row = Reconciliation.objects.get(invoice_id=old.pk)
    assert (row.revenue, row.inference_cost, row.calls, row.unpriced_calls) == (
        Decimal(49),
        Decimal(3),
        3,
        1,
    )
    assert (row.margin, row.margin_percent) == (Decimal(46), Decimal("93.88"))
    assert row.breakdown_at is None
    # No calls in its period: all it billed is margin.
    quiet_row = Reconciliation.objects.get(invoice_id=quiet.pk)
    assert (quiet_row.inference_cost, quiet_row.calls, quiet_row.unpriced_calls) == (0, 0, 0)
    assert (quiet_row.margin, quiet_row.margin_percent) == (Decimal(49), Decimal("100.00"))
    assert invoices_unreconciled(limit=10) == [old.pk, quiet.pk]

    assert reconcile_missing() == 2

    assert invoices_unreconciled(limit=10) == []
    assert Reconciliation.objects.get(invoice_id=old.pk).breakdown_at is not None


def test_breakdowns_of_invoices_with_free_credits_are_made_again_with_their_discount():
    """Breakdowns stored before cells had a discount: those of invoices that used
    promotional credits are marked not made (analytics 0004), and the sweep makes them
    again, discount included; the others stay as they were."""
    executor = MigrationExecutor(connection)
    then = [("analytics", "0003_reconciliation_tokens")]
    executor.migrate(then)
    try:
        apps = executor.loader.project_state(then).apps
        made = NOVEMBER + timedelta(hours=1)
        version = plan_load("pro", base_fee="49")  # plans and invoicing are as they are now
        invoices = {}
        for name, credits in (("acme", -3000), ("quiet", 0)):
            invoice = Invoice.objects.create(
                customer=customer_create(external_id=name),
                period_start=OCTOBER,
                period_end=NOVEMBER,
                plan_version=version,
                currency="USD",
                total=4900 + credits,
                status="finalized",
                closed_at=NOVEMBER,
            )
            line = InvoiceLine.objects
            line.create(invoice=invoice, position=1, kind="base_fee", description="Base fee",
                        quantity=1, unit_price=49, amount=4900)  # fmt: skip
            if credits:
                line.create(invoice=invoice, position=2, kind="credits_applied",
                            description="Credits applied", quantity=1, unit_price=-30,
                            amount=credits)  # fmt: skip
            revenue = Decimal(4900 + credits) / 100
            apps.get_model("analytics", "Reconciliation").objects.create(
                invoice_id=invoice.pk, revenue=revenue, inference_cost=0, calls=0, tokens=0,
                unpriced_calls=0, margin=revenue, margin_percent=100, breakdown_at=made,
            )  # fmt: skip
            apps.get_model("analytics", "ReconciliationCell").objects.create(
                invoice_id=invoice.pk, calls=0, tokens=0, cost=0, unpriced_calls=0, revenue=revenue
            )
            invoices[name] = invoice.pk
        # The cells' foreign keys are checked now, not at commit: ALTER TABLE refuses a
        # table with checks pending.
        with connection.cursor() as cursor:
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate(executor.loader.graph.leaf_nodes())

    assert invoices_unreconciled(limit=10) == [invoices["acme"]]
    assert Reconciliation.objects.get(invoice_id=invoices["quiet"]).breakdown_at == made
    assert reconcile_missing() == 1
    acme = Invoice.objects.get(pk=invoices["acme"])
    assert [(c.revenue, c.discount) for c in acme.cost_cells.all()] == [(Decimal(19), Decimal(30))]
