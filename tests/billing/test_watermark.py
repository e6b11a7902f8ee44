"""What a close has seen goes by commit order, not by a clock (billing/invoicing/watermark.py).

Each test holds a fact's transaction open across a close: the fact is stamped (received,
succeeded, reversed) before the close, and commits after it took its snapshot. By a clock
it would belong to the closed invoice, which never saw it, and be skipped by the next
one. By commit order it is late for the next invoice, and billed there once."""

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import connection, transaction
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from billing.analytics.models import Reconciliation
from billing.analytics.services import invoices_reconcile
from billing.invoicing.models import Invoice
from billing.invoicing.services import period_close
from billing.plans.models import Subscription
from metering.schemas import parse_event_batch
from metering.services import events_ingest
from metering.services.prices import events_price_unpriced
from outcomes.models import Outcome
from outcomes.schemas import parse_outcome_batch
from outcomes.services import outcome_reverse, outcomes_record
from tests.billing.factories import plan_load
from tests.metering.factories import customer_create, event_payload, override_create

pytestmark = pytest.mark.django_db(transaction=True)

OCTOBER = datetime(2026, 10, 1, tzinfo=UTC)
NOVEMBER = datetime(2026, 11, 1, tzinfo=UTC)
DECEMBER = datetime(2026, 12, 1, tzinfo=UTC)


@pytest.fixture
def customer(settings):
    settings.METERING_LATE_EVENT_WINDOW_DAYS = 3650  # the dates here are fixed, the clock is not
    version = plan_load(
        "support-ai",
        outcomes=[{"type": "resolution", "unit_price": "0.99"}],
        token_pass_through=[{"feature": "", "markup": "0.5"}],
        reversal_window_days=3650,
    )
    customer = customer_create(external_id="acme")
    Subscription.objects.create(customer=customer, plan=version.plan, started_at=OCTOBER)
    return customer


@contextmanager
def committed_after_a_close(write: Callable[[], object]) -> Iterator[None]:
    """Run `write` in a transaction of another connection that stays open until the body
    (a close) has run, then commits."""
    written, release = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def hold() -> None:
        try:
            with transaction.atomic():
                write()
                written.set()
                release.wait(timeout=30)
        except BaseException as error:  # reported below
            errors.append(error)
            written.set()
        finally:
            connection.close()

    holder = threading.Thread(target=hold)
    holder.start()
    assert written.wait(timeout=30)
    try:
        with connection.cursor() as cursor:  # a close must not wait for the writer's commit
            cursor.execute("SET lock_timeout = '5s'")
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute("RESET lock_timeout")
        release.set()
        holder.join(timeout=30)
    assert errors == []


def ingest(**fields: object) -> None:
    body = json.dumps(event_payload("acme", **fields)).encode()
    events_ingest(events=parse_event_batch(body, now=timezone.now()))


def record(**fields: object) -> None:
    body = json.dumps({"customer": "acme", "type": "resolution", **fields}).encode()
    outcomes_record(outcomes=parse_outcome_batch(body, now=timezone.now()))


def lines(invoice: Invoice) -> list[tuple[str, Decimal, int]]:
    return [(line.kind, line.quantity, line.amount) for line in invoice.lines.all()]


def test_a_call_committed_after_the_close_took_its_snapshot_is_billed_next_time(customer):
    late_call = {
        "id": "slow",
        "cost": "2.00",
        "timestamp": (NOVEMBER - timedelta(hours=1)).isoformat(),
    }

    with committed_after_a_close(lambda: ingest(**late_call)):
        october = period_close(customer_id=customer.pk, period_start=OCTOBER)
    november = period_close(customer_id=customer.pk, period_start=NOVEMBER)

    assert october.total == 0  # it had not committed: October's invoice never saw it
    assert lines(november) == [("late_usage", Decimal(2), 300)]  # $2 at cost + 50 %
    assert period_close(customer_id=customer.pk, period_start=DECEMBER).total == 0


def test_a_success_committed_after_the_close_took_its_snapshot_is_billed_next_time(customer):
    success = {
        "id": "slow",
        "status": "succeeded",
        "timestamp": (NOVEMBER - timedelta(hours=1)).isoformat(),
    }

    with committed_after_a_close(lambda: record(**success)):
        october = period_close(customer_id=customer.pk, period_start=OCTOBER)
    november = period_close(customer_id=customer.pk, period_start=NOVEMBER)

    assert october.total == 0
    assert lines(november) == [("late_usage", Decimal(1), 99)]
    assert period_close(customer_id=customer.pk, period_start=DECEMBER).total == 0


def test_a_reversal_committed_after_the_close_took_its_snapshot_is_credited_next_time(customer):
    record(id="o-1", status="succeeded", timestamp=(OCTOBER + timedelta(days=3)).isoformat())
    october = period_close(customer_id=customer.pk, period_start=OCTOBER)
    reverse = lambda: outcome_reverse(  # noqa: E731
        external_id="o-1", window=timedelta(days=3650), now=timezone.now()
    )

    with committed_after_a_close(reverse):
        november = period_close(customer_id=customer.pk, period_start=NOVEMBER)
    december = period_close(customer_id=customer.pk, period_start=DECEMBER)

    assert october.total == 99
    assert november.total == 0  # the reversal had not committed
    assert lines(december) == [("credit", Decimal(-1), -99)]
    assert Outcome.objects.get(external_id="o-1").status == "reversed"


def test_a_call_priced_after_its_period_was_invoiced_is_billed_next_time_and_costs_there(
    customer,
):
    at = OCTOBER + timedelta(days=20)
    ingest(id="llama", provider="self-hosted", model="llama-3-8b-distilled",
           input_tokens=1_000_000, output_tokens=0, timestamp=at.isoformat())  # fmt: skip
    october = period_close(customer_id=customer.pk, period_start=OCTOBER)
    assert october.total == 0 and october.reconciliation.unpriced_calls == 1

    # The operator prices the model from the start of October: $0.40 per million input.
    override_create(effective_from=OCTOBER, input_per_mtok="0.40")
    assert events_price_unpriced(provider="self-hosted", model="llama-3-8b-distilled") == 1
    november = period_close(customer_id=customer.pk, period_start=NOVEMBER)

    assert lines(november) == [("late_usage", Decimal("0.4"), 60)]  # $0.40 at cost + 50 %
    reconciliations = {
        r.invoice.period_start: r for r in Reconciliation.objects.select_related("invoice")
    }
    # Its cost counts where its revenue is billed; its call was counted (unpriced) before.
    assert reconciliations[OCTOBER].inference_cost == 0
    assert reconciliations[NOVEMBER].inference_cost == Decimal("0.4")
    assert reconciliations[NOVEMBER].calls == 0
    assert reconciliations[NOVEMBER].unpriced_calls == -1  # one unpriced call is priced now
    invoices_reconcile(invoice_ids=[october.pk, november.pk])
    assert [(c.calls, c.unpriced_calls, c.cost, c.revenue) for c in november.cost_cells.all()] == [
        (0, -1, Decimal("0.4"), Decimal("0.6"))
    ]
    assert period_close(customer_id=customer.pk, period_start=DECEMBER).total == 0


def test_each_invoice_keeps_the_snapshot_of_its_close(customer):
    october = period_close(customer_id=customer.pk, period_start=OCTOBER)

    xmin, xmax, _ = Invoice.objects.get(pk=october.pk).snapshot.split(":")
    assert int(xmin) <= int(xmax)


def test_an_upgrade_from_the_clock_bills_what_was_late_once_and_nothing_again(customer):
    """An older payback marked what a close billed by its `closed_at`; after the upgrade
    (billing migration 0006) the next close bills exactly the facts that were late by
    that rule."""
    executor = MigrationExecutor(connection)
    executor.migrate(
        [
            ("billing", "0005_stripe_links_and_line_sources"),
            ("outcomes", "0001_initial"),
            ("metering", "0002_partition_events"),
        ]
    )
    try:
        closed_at = datetime(2026, 11, 1, 2, tzinfo=UTC)
        october_end = NOVEMBER - timedelta(days=2)
        with connection.cursor() as cursor:
            cursor.execute(
                """
                INSERT INTO billing_invoice (customer_id, period_start, period_end,
                    plan_version_id, currency, total, status, closed_at, stripe_invoice_id,
                    hosted_invoice_url, invoice_pdf, push_state, push_step, push_attempts,
                    push_error, drift, created_at, updated_at)
                SELECT %(customer)s, %(october)s, %(november)s, pv.id, 'USD', 249,
                       'finalized', %(closed_at)s, '', '', '', 'not_sent', '', 0, '', '',
                       now(), now()
                FROM billing_planversion pv;
                INSERT INTO outcomes_outcome (external_id, customer_id, type, status,
                    occurred_at, succeeded_at, succeeded_recorded_at, value_currency,
                    properties, created_at, updated_at)
                VALUES ('on-time', %(customer)s, 'resolution', 'succeeded', %(at)s, %(at)s,
                        %(before)s, '', '{}', now(), now()),
                       ('late', %(customer)s, 'resolution', 'succeeded', %(at)s, %(at)s,
                        %(after)s, '', '{}', now(), now());
                INSERT INTO metering_usageevent (event_id, customer_id, "timestamp",
                    received_at, provider, model, input_tokens, output_tokens,
                    cache_read_tokens, cache_write_tokens, cost, cost_source, price_version,
                    outcome_ref, end_user, feature, tier, prompt_hash, properties)
                VALUES ('on-time-call', %(customer)s, %(at)s, %(before)s, 'openai', 'gpt-4o',
                        0, 0, 0, 0, 1, 'explicit', 'explicit', '', '', '', '', '', '{}'),
                       ('late-call', %(customer)s, %(at)s, %(after)s, 'openai', 'gpt-4o',
                        0, 0, 0, 0, 2, 'explicit', 'explicit', '', '', '', '', '', '{}');
                """,
                {
                    "customer": customer.pk,
                    "october": OCTOBER,
                    "november": NOVEMBER,
                    "closed_at": closed_at,
                    "at": october_end,
                    "before": closed_at - timedelta(hours=1),
                    "after": closed_at + timedelta(hours=1),
                },
            )
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate(executor.loader.graph.leaf_nodes())

    november = period_close(customer_id=customer.pk, period_start=NOVEMBER)

    # The late success at 0.99, the late call's $2 at cost + 50 %: nothing on time again.
    assert lines(november) == [("late_usage", Decimal(1), 99), ("late_usage", Decimal(2), 300)]
    assert period_close(customer_id=customer.pk, period_start=DECEMBER).total == 0
