"""Row locks of the outcomes app, in one place, always taken in one order.

Outcomes that may not exist yet cannot be locked by row, so a transaction-level advisory
lock per id (sorted, so two requests never wait on each other in a cycle) serialises
the requests that touch the same ids; the unique constraint on external_id stays the
guard underneath.
"""

from django.db import connection

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
