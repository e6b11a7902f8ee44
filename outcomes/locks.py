"""Row locks of the outcomes app, in one place, always taken in one order.

Outcomes that may not exist yet cannot be locked by row, so a transaction-level advisory
lock per id (sorted, so two requests never wait on each other in a cycle) serialises
the requests that touch the same ids; the unique constraint on external_id stays the
guard underneath.
"""

from django.db import connection

from metering.models import Customer
from outcomes.models import Outcome


def outcomes_lock(*, external_ids: list[str]) -> dict[str, Outcome]:
    """Lock these outcome ids for the current transaction; return those that exist."""
    ids = sorted(set(external_ids))
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended('outcome:' || id, 0)) "
            "FROM unnest(%s::text[]) AS id ORDER BY id",
            [ids],
        )
    # Only the outcomes' rows: FOR UPDATE of the joined customer row too would hold off
    # every insert that references the customer (its calls, its invoices) until commit.
    found = (
        Outcome.objects.select_for_update(of=("self",))
        .select_related("customer")
        .filter(external_id__in=ids)
        .order_by("pk")
    )
    return {outcome.external_id: outcome for outcome in found}


def customers_lock(*, customer_ids: set[int]) -> None:
    """Lock the customers whose outcomes the transaction writes, all at once and in order
    (FOR NO KEY UPDATE: what references a customer, its invoices, is not held off). The
    running rollup's triggers lock each statement's customers the same way
    (billing/invoicing/migrations/0003_running_rollup.py); a transaction of several
    statements over different customers that took them statement by statement could wait
    on a batch of calls that waits on it."""
    list(
        Customer.objects.select_for_update(no_key=True)
        .filter(pk__in=customer_ids)
        .order_by("pk")
        .values_list("pk", flat=True)
    )
