"""Every priced call and every success is billed exactly once, under every interleaving.

Several threads record calls, successes and reversals for the same customers, for months
that are open and months already invoiced, each holding its transaction open a little
after writing (so that its stamps come before a close's snapshot and its commit after),
while closes run month after month, two at once for each. Afterwards each customer's
invoices are compared with what the threads committed, priced by hand: per period, the
lines that bill it (its own and every later late-usage or credit line that names it) sum
to the price of everything it holds, and the margin rows' costs sum to the calls' costs.
"""

import json
import random
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

import pytest
from django.db import connection, transaction
from django.db.models import Sum
from django.utils import timezone

from billing.analytics.models import Reconciliation
from billing.invoicing.models import Invoice, InvoiceLine
from billing.invoicing.services import period_close
from billing.plans.models import Subscription
from metering.schemas import parse_event_batch
from metering.services import events_ingest
from outcomes.schemas import parse_outcome_batch
from outcomes.services import outcome_reverse, outcomes_record
from tests.billing.factories import plan_load
from tests.metering.factories import customer_create

pytestmark = pytest.mark.django_db(transaction=True)

CUSTOMERS = ["acme", "globex", "initech"]
MONTHS = [datetime(2026, month, 1, tzinfo=UTC) for month in range(1, 10)]  # Jan .. Sep
ACTIVE = MONTHS[:6]  # facts arrive for January to June
WRITERS, ACTIONS = 4, 90

# The price book, and the same prices by hand: a $5 base fee; resolutions graduated, the
# first 3 at $1.00 and the rest at $0.50; AI usage passed through at cost + 50 %.
PLAN = {
    "base_fee": "5",
    "outcomes": [
        {
            "type": "resolution",
            "tier_mode": "graduated",
            "tiers": [{"up_to": 3, "unit_price": "1.00"}, {"unit_price": "0.50"}],
        }
    ],
    "token_pass_through": [{"feature": "", "markup": "0.5"}],
    "reversal_window_days": 3650,
}


def priced_by_hand(successes: int, cost: Decimal) -> int:
    """Cents for one period."""
    usage = int((cost * Decimal("1.5") * 100).quantize(Decimal(1), ROUND_HALF_UP)) if cost else 0
    return 500 + 100 * min(successes, 3) + 50 * max(successes - 3, 0) + usage


@dataclass
class Committed:
    """What the writers' transactions committed (written down after each commit)."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    costs: dict[tuple[str, datetime], Decimal] = field(default_factory=lambda: defaultdict(Decimal))
    successes: dict[str, tuple[str, datetime]] = field(default_factory=dict)
    reversed: set[str] = field(default_factory=set)


def write(committed: Committed, writer: int, errors: list[BaseException]) -> None:
    rng = random.Random(writer)  # noqa: S311 -- a reproducible mix, not a secret
    mine: list[str] = []
    try:
        for action in range(ACTIONS):
            customer, month = rng.choice(CUSTOMERS), rng.choice(ACTIVE)
            at = month + timedelta(days=rng.randrange(28), minutes=rng.randrange(1440))
            key = f"w{writer}-{action}"
            kind = rng.choice(["call", "call", "success", "reverse"])
            with transaction.atomic():
                if kind == "call":
                    cost = Decimal(rng.randrange(1, 5000)) / 10000
                    body = {"id": key, "customer": customer, "cost": str(cost),
                            "timestamp": at.isoformat()}  # fmt: skip
                    events_ingest(
                        events=parse_event_batch(json.dumps(body).encode(), now=timezone.now())
                    )
                elif kind == "success" or not mine:
                    kind = "success"
                    body = {"id": key, "customer": customer, "type": "resolution",
                            "status": "succeeded", "timestamp": at.isoformat()}  # fmt: skip
                    outcomes_record(
                        outcomes=parse_outcome_batch(json.dumps(body).encode(), now=timezone.now())
                    )
                else:
                    key = mine.pop(rng.randrange(len(mine)))
                    outcome_reverse(
                        external_id=key, window=timedelta(days=3650), now=timezone.now()
                    )
                # Stamped; committed a little later, maybe after a close took its snapshot.
                time.sleep(rng.uniform(0, 0.03))
            with committed.lock:
                if kind == "call":
                    committed.costs[(customer, month)] += cost
                elif kind == "success":
                    committed.successes[key] = (customer, month)
                    mine.append(key)
                else:
                    committed.reversed.add(key)
    except BaseException as error:  # reported by the test
        errors.append(error)
    finally:
        connection.close()


def close_twice_at_once(
    customer_ids: list[int], month: datetime, errors: list[BaseException]
) -> None:
    def close(customer_id: int) -> None:
        try:
            period_close(customer_id=customer_id, period_start=month)
        except BaseException as error:  # reported by the test
            errors.append(error)
        finally:
            connection.close()

    closers = [threading.Thread(target=close, args=(c,)) for c in customer_ids for _ in range(2)]
    for closer in closers:
        closer.start()
    for closer in closers:
        closer.join(timeout=60)


def test_every_call_and_success_is_billed_once_whatever_commits_when(settings):
    settings.METERING_LATE_EVENT_WINDOW_DAYS = 3650  # the months here are fixed, the clock is not
    version = plan_load("truth", **PLAN)
    customers = {name: customer_create(external_id=name) for name in CUSTOMERS}
    for customer in customers.values():
        Subscription.objects.create(customer=customer, plan=version.plan, started_at=MONTHS[0])
    committed, errors = Committed(), []
    writers = [threading.Thread(target=write, args=(committed, n, errors)) for n in range(WRITERS)]
    for writer in writers:
        writer.start()
    customer_ids = [customer.pk for customer in customers.values()]
    for month in MONTHS[:-1]:  # January .. August, while the writers write
        close_twice_at_once(customer_ids, month, errors)
        time.sleep(0.15)
    for writer in writers:
        writer.join(timeout=120)
    close_twice_at_once(customer_ids, MONTHS[-1], errors)  # September sees every commit

    assert errors == []
    assert Invoice.objects.count() == len(CUSTOMERS) * len(MONTHS)  # once per period
    late = InvoiceLine.objects.exclude(source_invoice=None).count()
    assert late > 0, "no interleaving happened: the test proves nothing"
    billed_successes: dict[tuple[str, datetime], int] = defaultdict(int)
    for key, place in committed.successes.items():
        if key not in committed.reversed:
            billed_successes[place] += 1
    for name, customer in customers.items():
        for invoice in Invoice.objects.filter(customer=customer):
            month = invoice.period_start
            billed = (
                InvoiceLine.objects.filter(invoice=invoice, source_invoice=None).aggregate(
                    s=Sum("amount")
                )["s"]
                or 0
            ) + (
                InvoiceLine.objects.filter(source_invoice=invoice).aggregate(s=Sum("amount"))["s"]
                or 0
            )
            expected = priced_by_hand(
                billed_successes[(name, month)], committed.costs[(name, month)]
            )
            assert billed == expected, f"{name} {month:%Y-%m}: billed {billed}, priced {expected}"
        total_cost = sum(
            (cost for (owner, _), cost in committed.costs.items() if owner == name), Decimal(0)
        )
        margin_cost = Reconciliation.objects.filter(invoice__customer=customer).aggregate(
            s=Sum("inference_cost")
        )["s"]
        assert margin_cost == total_cost, name
