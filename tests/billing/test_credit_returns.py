"""A credit for a period that credits had paid goes back to the credits: to the grant
that paid it while it is live, else to a new promotional grant from the period's end;
never more than it paid, and bought credits stay revenue only as they are used.

`acme`: a $10 base fee and $2.00 per resolution from October 2026; five resolutions in
October bill $20."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from billing.analytics.models import Reconciliation
from billing.credits.models import CreditEntry, CreditGrant, EntryKind, GrantKind
from billing.credits.services import GrantRequest, grant_create, top_up_create, top_up_paid
from billing.invoicing.models import Invoice
from billing.invoicing.services import period_close
from billing.limits.selectors import available
from billing.plans.models import LineKind, Subscription
from outcomes.models import Outcome
from tests.billing.factories import plan_load
from tests.metering.factories import customer_create

pytestmark = pytest.mark.django_db(transaction=True)

OCTOBER = datetime(2026, 10, 1, tzinfo=UTC)
NOVEMBER = datetime(2026, 11, 1, tzinfo=UTC)
DECEMBER = datetime(2026, 12, 1, tzinfo=UTC)


@pytest.fixture
def acme():
    version = plan_load(
        "per-resolution", base_fee="10", outcomes=[{"type": "resolution", "unit_price": "2.00"}]
    )
    customer = customer_create(external_id="acme")
    Subscription.objects.create(customer=customer, plan=version.plan, started_at=OCTOBER)
    for number in range(5):
        at = OCTOBER + timedelta(days=number + 1)
        Outcome.objects.create(
            external_id=f"o-{number}", customer=customer, type="resolution",
            status="succeeded", occurred_at=at, succeeded_at=at, succeeded_recorded_at=at,
        )  # fmt: skip
    return customer


def reverse(number: int) -> None:
    Outcome.objects.filter(external_id=f"o-{number}").update(
        status="reversed", reversed_at=timezone.now()
    )


def give(customer, amount: str, **terms) -> CreditGrant:
    made, _ = grant_create(
        customer=customer,
        request=GrantRequest(amount=Decimal(amount), currency="USD", effective_at=OCTOBER, **terms),
    )
    return made


def lines(invoice: Invoice) -> list[tuple[str, int]]:
    return [(line.kind, line.amount) for line in invoice.lines.all()]


def ledger(grant: CreditGrant) -> list[tuple[str, Decimal]]:
    return [(e.kind, e.amount) for e in grant.entries.order_by("pk")]


def test_a_credit_for_a_period_credits_paid_goes_back_to_the_grant_and_pays_on(
    acme, client_with_key
):
    promo = give(acme, "30")
    october = period_close(customer_id=acme.pk, period_start=OCTOBER)
    assert october.total == 0  # $20, all from credits

    reverse(0)
    # Before November's close, what may be spent counts the $2 coming back: $10 left +
    # $2, less November's $10 fee (its $2 credit offset by what goes back to credits).
    spendable = available(customer=acme, now=NOVEMBER + timedelta(days=1))
    assert (spendable.credits, spendable.billed, spendable.amount) == (12, 10, 2)
    preview = client_with_key.get(
        "/v1/customers/acme/usage", {"period": NOVEMBER.isoformat()}
    ).json()["invoice_preview"]
    november = period_close(customer_id=acme.pk, period_start=NOVEMBER)

    assert [(line["kind"], line["amount"]) for line in preview["lines"]] == lines(november)
    assert lines(november) == [
        (LineKind.BASE_FEE, 1000),
        (LineKind.CREDIT, -200),
        (LineKind.CREDITS_RETURNED, 200),
        (LineKind.CREDITS_APPLIED, -1000),
    ]
    assert november.total == 0
    assert ledger(promo) == [
        (EntryKind.GRANT, Decimal(30)),
        (EntryKind.DRAWN, Decimal(-20)),
        (EntryKind.RETURNED, Decimal(2)),
        (EntryKind.DRAWN, Decimal(-10)),
    ]
    returned = promo.entries.get(kind=EntryKind.RETURNED)
    assert (returned.invoice_id, returned.source_invoice_id) == (november.pk, october.pk)


def test_never_more_goes_back_than_credits_paid_over_later_closes(acme):
    promo = give(acme, "6")  # pays $6 of October's $20
    period_close(customer_id=acme.pk, period_start=OCTOBER)

    reverse(0)
    reverse(1)
    november = period_close(customer_id=acme.pk, period_start=NOVEMBER)
    reverse(2)
    reverse(3)
    december = period_close(customer_id=acme.pk, period_start=DECEMBER)

    assert lines(november) == [
        (LineKind.BASE_FEE, 1000),
        (LineKind.CREDIT, -400),
        (LineKind.CREDITS_RETURNED, 400),
        (LineKind.CREDITS_APPLIED, -400),
    ]
    # $4 of the $6 came back already: $2 more go to the credits, the other $2 stay a credit.
    assert lines(december) == [
        (LineKind.BASE_FEE, 1000),
        (LineKind.CREDIT, -400),
        (LineKind.CREDITS_RETURNED, 200),
        (LineKind.CREDITS_APPLIED, -200),
    ]
    assert december.total == 600
    returned = promo.entries.filter(kind=EntryKind.RETURNED)
    assert sum(entry.amount for entry in returned) == Decimal(6)


def test_credits_of_a_grant_no_longer_live_go_to_a_new_grant_from_the_periods_end(acme):
    ending = give(acme, "30", expires_at=NOVEMBER)
    october = period_close(customer_id=acme.pk, period_start=OCTOBER)

    reverse(0)
    november = period_close(customer_id=acme.pk, period_start=NOVEMBER)

    assert november.total == 1000  # nothing live pays November
    assert lines(november)[-1] == (LineKind.CREDITS_RETURNED, 200)
    made = CreditGrant.objects.get(returned_from=ending)
    assert (made.kind, made.amount, made.effective_at) == (
        GrantKind.PROMOTIONAL,
        Decimal(2),
        DECEMBER,
    )
    assert made.entries.get().source_invoice_id == october.pk
    december = period_close(customer_id=acme.pk, period_start=DECEMBER)
    assert december.total == 800


def test_bought_credits_that_come_back_are_not_revenue_until_used_again(acme):
    top_up, _ = top_up_create(customer=acme, amount=Decimal(30), currency="USD")
    top_up_paid(top_up_id=top_up.pk, at=OCTOBER)
    october = period_close(customer_id=acme.pk, period_start=OCTOBER)
    assert Reconciliation.objects.get(invoice=october).revenue == Decimal(20)

    reverse(0)
    november = period_close(customer_id=acme.pk, period_start=NOVEMBER)

    assert lines(november) == [
        (LineKind.BASE_FEE, 1000),
        (LineKind.CREDIT, -200),
        (LineKind.PREPAID_RETURNED, 200),
        (LineKind.PREPAID_APPLIED, -1000),
    ]
    # November bills $10 less the $2 credit: $8 of revenue, all paid with bought credits.
    assert Reconciliation.objects.get(invoice=november).revenue == Decimal(8)
    assert CreditEntry.objects.filter(kind=EntryKind.RETURNED).count() == 1
