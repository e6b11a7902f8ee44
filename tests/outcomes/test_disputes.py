"""Disputes: a customer contests a billed outcome through the product backend; an operator
accepts (the outcome is reversed, even past its window, and credited on the next invoice)
or rejects it (it stands), in the admin, with a note, audited."""

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from auditlog.models import LogEntry
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from alerts.models import AlertRule
from alerts.services import alerts_evaluate
from billing.invoicing.services import period_close
from billing.plans.models import Subscription
from billing.statements.links import statement_path
from outcomes.models import Dispute, Outcome
from outcomes.services import DisputeDecided, dispute_decide
from tests.billing.factories import plan_load
from tests.metering.factories import customer_create

pytestmark = pytest.mark.django_db(transaction=True)  # closes bill committed facts

OCTOBER = datetime(2026, 10, 1, tzinfo=UTC)
NOVEMBER = datetime(2026, 11, 1, tzinfo=UTC)


@pytest.fixture
def billed() -> Outcome:
    """acme's October: two resolutions at 0.99, closed; the reversal window is 7 days."""
    version = plan_load("chat", outcomes=[{"type": "resolution", "unit_price": "0.99"}])
    customer = customer_create(external_id="acme")
    Subscription.objects.create(customer=customer, plan=version.plan, started_at=OCTOBER)
    for n in range(2):
        at = OCTOBER + timedelta(days=3 + n)
        Outcome.objects.create(
            external_id=f"r-{n}", customer=customer, type="resolution", status="succeeded",
            occurred_at=at, succeeded_at=at, succeeded_recorded_at=at,
        )  # fmt: skip
    Outcome.objects.create(
        external_id="p-1", customer=customer, type="resolution", status="pending",
        occurred_at=OCTOBER,
    )  # fmt: skip
    assert period_close(customer_id=customer.pk, period_start=OCTOBER).total == 198
    return Outcome.objects.get(external_id="r-0")


def _dispute(client: APIClient, outcome: str, reason: str = "Not resolved") -> Any:
    return client.post(f"/v1/outcomes/{outcome}/disputes", {"reason": reason}, format="json")


def test_a_dispute_is_opened_once_and_listed(client_with_key: APIClient, billed: Outcome) -> None:
    first = _dispute(client_with_key, "r-0", "The customer had to call us anyway.")
    again = _dispute(client_with_key, "r-0", "The customer had to call us anyway.")
    listed = client_with_key.get("/v1/outcomes/r-0/disputes")

    assert first.status_code == 201
    assert first.json()["status"] == "open"
    assert again.status_code == 200 and again.json()["id"] == first.json()["id"]
    assert [d["id"] for d in listed.json()] == [first.json()["id"]]
    assert Dispute.objects.count() == 1


def test_only_a_success_can_be_disputed(client_with_key: APIClient, billed: Outcome) -> None:
    pending = _dispute(client_with_key, "p-1")
    unknown = _dispute(client_with_key, "nobody")
    empty = _dispute(client_with_key, "r-0", "")

    assert pending.status_code == 409
    assert pending.json()["errors"][0]["code"] == "not_billed"
    assert unknown.status_code == 404
    assert empty.status_code == 400 and empty.json()["errors"][0]["field"] == "reason"
    assert not Dispute.objects.exists()


def _decide(staff: Client, dispute: Dispute, decision: str, note: str) -> Any:
    return staff.post(
        f"/admin/outcomes/dispute/{dispute.pk}/change/",
        {"decision": decision, "note": note},
    )


def test_an_accepted_dispute_reverses_past_the_window_and_credits_the_next_invoice(
    client_with_key: APIClient, staff_client: Client, billed: Outcome
) -> None:
    dispute = Dispute.objects.get(pk=_dispute(client_with_key, "r-0").json()["id"])

    answer = _decide(
        staff_client, dispute, "next_invoice", "Their ticket was reopened the next day."
    )

    assert answer.status_code == 302, answer.content
    dispute.refresh_from_db()
    assert (dispute.status, dispute.remedy, dispute.decided_by) == (
        "accepted",
        "next_invoice",
        "admin",
    )
    billed.refresh_from_db()
    assert billed.status == "reversed"  # 8 weeks after its success: past the 7-day window
    november = period_close(customer_id=billed.customer_id, period_start=NOVEMBER)
    assert [(line.kind, line.amount) for line in november.lines.all()] == [("credit", -99)]
    entries = LogEntry.objects.get_for_object(dispute)
    assert any("accepted" in str(entry.changes) for entry in entries)
    invoice = billed.customer.invoices.get(period_start=OCTOBER)
    october = Client().get(statement_path(invoice.pk))
    assert october.status_code == 200
    assert "dispute accepted" in october.content.decode()


def test_a_rejected_dispute_stands_and_needs_a_note(
    client_with_key: APIClient, staff_client: Client, billed: Outcome
) -> None:
    dispute = Dispute.objects.get(pk=_dispute(client_with_key, "r-1").json()["id"])

    without_note = _decide(staff_client, dispute, "reject", " ")
    rejected = _decide(staff_client, dispute, "reject", "The resolution was confirmed.")

    assert without_note.status_code == 200  # the form again, with its error
    assert "Say why" in without_note.content.decode()
    assert rejected.status_code == 302
    dispute.refresh_from_db()
    assert (dispute.status, dispute.note) == ("rejected", "The resolution was confirmed.")
    assert Outcome.objects.get(external_id="r-1").status == "succeeded"
    with pytest.raises(DisputeDecided):
        dispute_decide(dispute_id=dispute.pk, accept=True, note="x", by="x", now=NOVEMBER)


def test_the_same_dispute_sent_twice_at_once_opens_one(billed: Outcome) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from django.db import connection

    from outcomes.services import dispute_open

    def send(_: int) -> tuple[int, bool]:
        try:
            dispute, created = dispute_open(external_id="r-0", reason="Not resolved")
            return dispute.pk, created
        finally:
            connection.close()

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(send, range(8)))

    assert len({pk for pk, _ in answers}) == 1  # every sender got the same dispute
    assert sum(created for _, created in answers) == 1
    assert Dispute.objects.count() == 1


def test_a_customer_may_dispute_again_after_a_rejection(
    client_with_key: APIClient, billed: Outcome
) -> None:
    first = _dispute(client_with_key, "r-1").json()["id"]
    dispute_decide(dispute_id=first, accept=False, note="Confirmed.", by="ops", now=NOVEMBER)

    second = _dispute(client_with_key, "r-1", "Here is the transcript.")

    assert second.status_code == 201 and second.json()["id"] != first


def test_the_margins_count_disputes_per_outcome_type_and_customer(
    client_with_key: APIClient, billed: Outcome
) -> None:
    accepted = _dispute(client_with_key, "r-0").json()["id"]
    dispute_decide(dispute_id=accepted, accept=True, note="Reopened.", by="ops", now=NOVEMBER)
    _dispute(client_with_key, "r-1")  # still open

    window = {"from": OCTOBER.isoformat(), "to": NOVEMBER.isoformat()}
    by_type = client_with_key.get("/v1/analytics/margins", {**window, "group_by": "outcome_type"})
    by_customer = client_with_key.get("/v1/analytics/margins", {**window, "group_by": "customer"})

    (row,) = [r for r in by_type.json()["rows"] if r["key"] == "resolution"]
    assert row["outcomes"]["succeeded"] == 1 and row["outcomes"]["reversed"] == 1
    assert (row["outcomes"]["disputed"], row["outcomes"]["disputes_accepted"]) == (2, 1)
    assert row["outcomes"]["dispute_rate_percent"] == "100"  # both of its 2 successes
    (acme,) = by_customer.json()["rows"]
    assert acme["outcomes"]["disputed"] == 2


def test_a_dispute_rate_above_its_threshold_raises_an_alert(client_with_key: APIClient) -> None:
    AlertRule.objects.all().delete()
    AlertRule.objects.create(name="disputes", kind="dispute_rate", threshold_percent=30)
    customer = customer_create(external_id="acme")
    now = timezone.now()
    for n in range(4):
        Outcome.objects.create(
            external_id=f"now-{n}", customer=customer, type="resolution", status="succeeded",
            occurred_at=now, succeeded_at=now, succeeded_recorded_at=now,
        )  # fmt: skip

    _dispute(client_with_key, "now-0")
    quiet = alerts_evaluate()  # 1 of 4: 25 %, not above 30 %
    _dispute(client_with_key, "now-1")
    [alert] = alerts_evaluate()  # 2 of 4: 50 %

    assert quiet == []
    assert alert.subject == "outcome_type:resolution"
    assert alert.details["dispute_rate_percent"] == "50"
    assert alerts_evaluate() == []  # once per period
