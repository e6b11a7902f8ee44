"""Authorizing spend from the SDK (payback's credits issue): `authorize`, and the
reservation scope that reserves before a block and lets payback settle it from what the
block records, against payback's own server and credits."""

import asyncio
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone
from payback_client import AsyncPayback, Failure, PaybackError, Refused

from billing.credits.services import GrantRequest, grant_create
from billing.limits.models import Reservation, ReservationStatus
from billing.limits.services import spend_limit_set
from billing.plans.models import Plan, Subscription
from billing.plans.services import plans_load
from metering.models import Customer, UsageEvent
from tests.sdk.conftest import Server, client
from tests.support.flaky_proxy import FlakyProxy


@pytest.fixture
def credits(server: Server) -> Customer:
    """acme: a plan at $0.99 per resolution, $3 of credits and a hard limit."""
    plans_load(document={"plans": [{"code": "chat", "name": "Chat", "currency": "USD",
               "outcomes": [{"type": "resolution", "unit_price": "0.99"}]}]})  # fmt: skip
    customer = Customer.objects.get(external_id="acme")
    started = timezone.now() - timedelta(hours=1)
    plan = Plan.objects.get(code="chat")
    Subscription.objects.create(customer=customer, plan=plan, started_at=started)
    grant_create(customer=customer, request=GrantRequest(amount=Decimal(3), currency="USD",
                 effective_at=started))  # fmt: skip
    spend_limit_set(customer=customer, mode="hard")
    return customer


def test_authorize_answers_at_once_and_refuses_past_the_credits(
    server: Server, failures: list[Failure], credits: Customer
) -> None:
    payback = client(server, failures)

    answers = [payback.authorize(customer="acme", amount="1") for _ in range(4)]
    priced = payback.authorize(customer="acme", outcome_type="resolution", quantity=1)
    payback.close()

    assert [a.allowed for a in answers] == [True, True, True, False]
    assert answers[3].exceeds == ["credits"] and answers[3].reservation is None
    assert Decimal(answers[2].available["available"]) == 0
    assert priced.amount == Decimal("0.99") and not priced.allowed
    assert Reservation.objects.filter(status=ReservationStatus.OPEN).count() == 3


def test_an_authorization_asked_again_after_a_lost_answer_is_the_same_reservation(
    server: Server, proxy: FlakyProxy, failures: list[Failure], credits: Customer
) -> None:
    proxy.lose_next_answer()
    payback = client(server, failures, url=proxy.url)

    answer = payback.authorize(customer="acme", amount="1")
    payback.close()

    assert answer.allowed
    assert [s.answered for s in proxy.seen] == [0, 200]
    assert list(Reservation.objects.values_list("public_id", flat=True)) == [answer.reservation]


def test_a_request_payback_refuses_raises(server: Server, failures: list[Failure]) -> None:
    payback = client(server, failures)

    with pytest.raises(PaybackError) as refused:
        payback.authorize(customer="globex", amount="1")  # no plan to spend in
    payback.close()

    assert refused.value.status == 409
    assert refused.value.errors[0]["code"] == "no_plan"


def test_a_reservation_scope_is_settled_by_what_it_records(
    server: Server, failures: list[Failure], credits: Customer
) -> None:
    payback = client(server, failures)

    with payback.reserve(customer="acme", outcome_type="resolution", quantity=1) as held:
        with payback.outcome("resolution"):
            payback.record_call(model="gpt-4o", input_tokens=800, output_tokens=90)
    assert payback.flush(timeout=30)
    payback.close()

    reservation = Reservation.objects.get(public_id=held.id)
    assert reservation.status == ReservationStatus.SETTLED
    assert UsageEvent.objects.get().customer.external_id == "acme"  # the scope's customer


def test_a_reservation_scope_that_records_nothing_is_released(
    server: Server, failures: list[Failure], credits: Customer
) -> None:
    payback = client(server, failures)

    with pytest.raises(RuntimeError), payback.reserve(customer="acme", amount="1") as held:
        raise RuntimeError("the model was never called")
    assert payback.flush(timeout=30)
    payback.close()

    assert Reservation.objects.get(public_id=held.id).status == ReservationStatus.RELEASED


def test_a_refused_reservation_scope_does_not_run_its_block(
    server: Server, failures: list[Failure], credits: Customer
) -> None:
    payback = client(server, failures)
    ran = []

    with pytest.raises(Refused) as refused, payback.reserve(customer="acme", amount="5"):
        ran.append(True)
    payback.close()

    assert ran == []
    assert refused.value.authorization.exceeds == ["credits"]
    assert not Reservation.objects.exists()


def test_the_asyncio_client_authorizes_and_reserves_too(
    server: Server, failures: list[Failure], credits: Customer
) -> None:
    async def main() -> tuple[bool, str]:
        options = {"flush_interval": 0.05, "on_error": failures.append}
        async with AsyncPayback(api_key=server.key, base_url=server.url, **options) as payback:
            first = await payback.authorize(customer="acme", amount="2")
            async with payback.reserve(customer="acme", amount="0.5") as held:
                payback.record_call(model="gpt-4o", input_tokens=10)
            payback.settle(first.reservation or "", "1.5")
            assert await payback.flush(timeout=30)
        return first.allowed, held.id

    allowed, held = asyncio.run(main())

    assert allowed
    settled = Reservation.objects.exclude(public_id=held).get()
    assert (settled.status, settled.settled_amount) == (ReservationStatus.SETTLED, Decimal("1.5"))
    assert Reservation.objects.get(public_id=held).status == ReservationStatus.SETTLED
    assert failures == []
