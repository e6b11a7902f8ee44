"""POST /v1/outcomes: the lifecycle, duplicates, conflicts, all or nothing."""

import typing
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from outcomes.models import SENT_STATUSES, Outcome, OutcomeStatus
from outcomes.schemas import OutcomeIn
from outcomes.serializers import OutcomeInputSerializer
from outcomes.services import outcome_reverse
from tests.metering.factories import customer_create
from tests.outcomes.factories import outcome_payload

pytestmark = pytest.mark.django_db


@pytest.fixture
def acme():
    return customer_create(external_id="acme")


def post(client, body):
    return client.post("/v1/outcomes", body, format="json")


def status_of(external_id):
    return Outcome.objects.get(external_id=external_id).status


@pytest.mark.parametrize("status", ["pending", "succeeded", "failed"])
def test_an_outcome_is_created_in_any_first_status(client_with_key, acme, status):
    body = outcome_payload(acme, id="o-1", status=status)
    assert post(client_with_key, body).json() == {"accepted": 1, "duplicates": 0, "conflicts": []}
    assert status_of("o-1") == status


def test_new_outcome_defaults_to_pending(client_with_key, acme):
    post(client_with_key, outcome_payload(acme, id="o-1"))
    assert status_of("o-1") == "pending"


@pytest.mark.parametrize("target", ["succeeded", "failed"])
def test_pending_moves_to_succeeded_or_failed(client_with_key, acme, target):
    post(client_with_key, outcome_payload(acme, id="o-1"))

    response = post(client_with_key, {"id": "o-1", "status": target})

    assert response.json()["accepted"] == 1
    outcome = Outcome.objects.get(external_id="o-1")
    assert outcome.status == target
    assert (outcome.succeeded_at if target == "succeeded" else outcome.failed_at) is not None


@pytest.mark.parametrize("status", ["pending", "succeeded", "failed"])
def test_resending_the_current_status_is_a_duplicate(client_with_key, acme, status):
    body = outcome_payload(acme, id="o-1", status=status)
    post(client_with_key, body)

    assert post(client_with_key, body).json() == {"accepted": 0, "duplicates": 1, "conflicts": []}
    assert post(client_with_key, {"id": "o-1", "status": status}).json()["duplicates"] == 1


@pytest.mark.parametrize(
    ("start", "target"),
    [("failed", "succeeded"), ("failed", "pending"), ("succeeded", "pending"),
     ("succeeded", "failed")],
)  # fmt: skip
def test_other_moves_are_409_naming_the_current_status(client_with_key, acme, start, target):
    post(client_with_key, outcome_payload(acme, id="o-1", status=start))

    response = post(client_with_key, {"id": "o-1", "status": target})

    assert response.status_code == 409
    error = response.json()["errors"][0]
    assert error["code"] == "invalid_transition" and error["field"] == "status"
    assert f"is {start}" in error["message"]
    assert status_of("o-1") == start


def test_a_refused_move_refuses_the_whole_batch(client_with_key, acme):
    post(client_with_key, outcome_payload(acme, id="done", status="failed"))

    response = post(
        client_with_key,
        {"outcomes": [outcome_payload(acme, id="new"), {"id": "done", "status": "succeeded"}]},
    )

    assert response.status_code == 409
    assert response.json()["errors"][0]["index"] == 1
    assert not Outcome.objects.filter(external_id="new").exists()


def test_a_reversed_outcome_cannot_move_again(client_with_key, acme):
    post(client_with_key, outcome_payload(acme, id="o-1", status="succeeded"))
    outcome_reverse(external_id="o-1", window=timedelta(days=7), now=timezone.now())

    response = post(client_with_key, {"id": "o-1", "status": "succeeded"})

    assert response.status_code == 409
    assert "is reversed" in response.json()["errors"][0]["message"]


def test_other_type_or_customer_for_a_known_id_is_a_conflict(client_with_key, acme):
    customer_create(external_id="globex")
    post(client_with_key, outcome_payload(acme, id="o-1"))

    answer = post(
        client_with_key,
        {"outcomes": [outcome_payload(acme, id="o-1", type="email_drafted"),
                      outcome_payload("globex", id="o-1")]},
    ).json()  # fmt: skip

    assert answer == {"accepted": 0, "duplicates": 0, "conflicts": ["o-1", "o-1"]}
    outcome = Outcome.objects.get(external_id="o-1")
    assert (outcome.type, outcome.customer.external_id) == ("resolution", "acme")


def test_value_may_arrive_with_the_success_but_not_change_after(client_with_key, acme):
    post(client_with_key, outcome_payload(acme, id="deal", type="invoice_negotiated"))

    success = {"id": "deal", "status": "succeeded", "value": "1250.00", "currency": "eur"}
    assert post(client_with_key, success).json()["accepted"] == 1
    outcome = Outcome.objects.get(external_id="deal")
    assert (outcome.value, outcome.value_currency) == (Decimal("1250"), "EUR")

    changed = {**success, "value": "99"}
    assert post(client_with_key, changed).json()["conflicts"] == ["deal"]


def test_a_value_sent_after_the_success_is_a_conflict(client_with_key, acme):
    # The success's fee (a percentage of its value) is fixed when it succeeds, and may be
    # invoiced by then: the value comes before the success or with it.
    post(client_with_key, outcome_payload(acme, id="deal", status="succeeded"))

    late_value = {"id": "deal", "status": "succeeded", "value": "1250", "currency": "USD"}
    assert post(client_with_key, late_value).json()["conflicts"] == ["deal"]
    assert Outcome.objects.get(external_id="deal").value is None


def test_create_and_move_in_one_batch(client_with_key, acme):
    answer = post(
        client_with_key,
        {"outcomes": [outcome_payload(acme, id="o-1"), {"id": "o-1", "status": "succeeded"}]},
    ).json()
    assert answer == {"accepted": 2, "duplicates": 0, "conflicts": []}
    assert status_of("o-1") == "succeeded"


NEW = {"id": "x", "customer": "acme", "type": "r"}


@pytest.mark.parametrize(
    ("body", "field", "code"),
    [
        ({"id": "x", "customer": "acme"}, "type", "required"),
        ({"id": "x", "type": "resolution"}, "customer", "required"),
        ({**NEW, "customer": "nobody"}, "customer", "unknown_customer"),
        ({**NEW, "type": "Bad Type"}, "type", "invalid"),
        ({**NEW, "status": "reversed"}, "status", "invalid"),
        ({**NEW, "value": "5"}, "currency", "value_needs_currency"),
        ({**NEW, "value": "-5", "currency": "USD"}, "value", "negative"),
        ({**NEW, "value": 5, "currency": "USD"}, "value", "invalid_type"),
        ({**NEW, "timestamp": "2026-01-01T00:00"}, "timestamp", "timestamp_without_offset"),
        ({"customer": "acme", "type": "r"}, "id", "required"),
    ],
)
def test_bad_outcomes_are_refused_and_nothing_is_written(client_with_key, acme, body, field, code):
    response = post(client_with_key, body)
    assert response.status_code == 400, response.content
    assert (response.json()["errors"][0]["field"], response.json()["errors"][0]["code"]) == (
        field,
        code,
    )
    assert not Outcome.objects.exists()


def test_reverse_within_the_window(acme, client_with_key):
    post(client_with_key, outcome_payload(acme, id="o-1", status="succeeded"))
    outcome = outcome_reverse(external_id="o-1", window=timedelta(days=7), now=timezone.now())
    assert outcome.status == "reversed" and outcome.reversed_at is not None
    # A retry changes nothing.
    again = outcome_reverse(external_id="o-1", window=timedelta(days=7), now=timezone.now())
    assert again.reversed_at == outcome.reversed_at


def test_the_statuses_a_client_may_send_are_one_list():
    """The wire schema (a msgspec Literal of plain strings), the documented serializer and
    the model's list of sent statuses name the same statuses: every status but reversed."""
    literal = typing.get_args(typing.get_type_hints(OutcomeIn)["status"])[0]
    documented = set(OutcomeInputSerializer().fields["status"].choices)

    assert set(typing.get_args(literal)) == documented == set(SENT_STATUSES)
    assert set(OutcomeStatus) - set(SENT_STATUSES) == {OutcomeStatus.REVERSED}
