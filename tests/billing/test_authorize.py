"""Real-time authorization: what a customer may spend now (credits live in its running
period, less what its usage bills so far and what open reservations hold), reservations
made, settled, released and expired, and no overspend under concurrency.

The scenario: `acme` pays $2.00 per resolution past the first one each month, and has
$10 of promotional credits."""

import os
import socket
import subprocess
import threading
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import connection, connections, transaction
from django.utils import timezone
from rest_framework_api_key.models import APIKey

from billing.credits.services import GrantRequest, grant_create
from billing.limits.models import FairUseCap, LimitMode, Reservation, ReservationStatus
from billing.limits.services import (
    SPEND_LOCK,
    SpendRequest,
    fair_use_caps_compute,
    reservations_expire,
    spend_limit_set,
)
from billing.limits.services import authorize as authorize_service
from billing.plans.models import Subscription
from config import front
from metering.models import UsageEvent
from outcomes.models import Outcome
from tests.billing.factories import plan_load
from tests.metering.factories import customer_create
from tests.support.polling import wait_for
from tests.support.processes import database_url, json_request

AUTHORIZE = "/v1/customers/acme/authorize"


def make_acme(mode: str = LimitMode.HARD, credits: str = "10"):
    version = plan_load(
        "per-resolution",
        outcomes=[{"type": "resolution", "unit_price": "2.00", "included": 1}],
    )
    customer = customer_create(external_id="acme")
    started = timezone.now() - timedelta(days=3)
    Subscription.objects.create(customer=customer, plan=version.plan, started_at=started)
    grant_create(
        customer=customer,
        request=GrantRequest(amount=Decimal(credits), currency="USD", effective_at=started),
    )
    spend_limit_set(customer=customer, mode=mode)
    return customer


def succeed(customer, number: int) -> None:
    now = timezone.now()
    Outcome.objects.create(
        external_id=f"o-{number}", customer=customer, type="resolution", status="succeeded",
        occurred_at=now, succeeded_at=now, succeeded_recorded_at=now,
    )  # fmt: skip


def authorize(client, **body):
    response = client.post(AUTHORIZE, body, format="json")
    assert response.status_code == 200, response.content
    return response.json()


@pytest.mark.django_db
class TestAuthorize:
    def test_what_fits_is_reserved_and_what_does_not_is_refused_under_a_hard_limit(
        self, client_with_key
    ):
        make_acme()

        first = authorize(client_with_key, amount="4")
        refused = authorize(client_with_key, amount="7")

        assert (first["allowed"], first["exceeds"]) == (True, [])
        assert first["reservation"]["status"] == "open"
        assert first["available"]["available"] == "6"
        assert (refused["allowed"], refused["exceeds"], refused["reservation"]) == (
            False,
            ["credits"],
            None,
        )
        assert refused["available"]["available"] == "6"
        assert Reservation.objects.count() == 1

    @pytest.mark.parametrize("mode", [LimitMode.SOFT, LimitMode.NONE])
    def test_soft_and_no_limits_allow_and_say_it_exceeds(self, client_with_key, mode):
        make_acme(mode=mode)

        answer = authorize(client_with_key, amount="12")

        assert (answer["allowed"], answer["exceeds"]) == (True, ["credits"])
        assert answer["available"]["available"] == "-2"

    def test_outcomes_are_priced_at_the_plans_price_past_what_is_included(self, client_with_key):
        make_acme()

        answer = authorize(client_with_key, outcome_type="resolution", quantity=3)

        assert answer["amount"] == "4"  # the first is included: 2 × $2.00
        assert answer["reservation"]["quantity"] == 3

    def test_outcomes_priced_by_a_property_are_reserved_at_the_dearest_price(self, client_with_key):
        """Chat $0.99, voice $1.49, anything else $0.99; a chat and a voice succeeded
        already. Which channel the next three take is not known yet: a reservation holds
        the most they could bill, 3 x $1.49 = $4.47 (the spend limit never undercounts)."""
        version = plan_load("channels", outcomes=[{
            "type": "resolution", "dimension": "channel", "unit_price": "0.99",
            "prices": [{"value": "chat", "unit_price": "0.99"},
                       {"value": "voice", "unit_price": "1.49"}],
        }])  # fmt: skip
        customer = customer_create(external_id="acme")
        Subscription.objects.create(
            customer=customer, plan=version.plan, started_at=timezone.now() - timedelta(days=1)
        )
        for number, channel in enumerate(("chat", "voice")):
            now = timezone.now()
            Outcome.objects.create(
                external_id=f"o-{number}", customer=customer, type="resolution",
                status="succeeded", occurred_at=now, succeeded_at=now, succeeded_recorded_at=now,
                properties={"channel": channel},
            )  # fmt: skip

        answer = authorize(client_with_key, outcome_type="resolution", quantity=3)

        assert answer["amount"] == "4.47"

    def test_what_the_period_bills_so_far_is_not_available(self, client_with_key):
        customer = make_acme()
        for number in range(3):  # one included, two at $2.00
            succeed(customer, number)

        answer = client_with_key.get("/v1/customers/acme/available").json()

        assert (answer["credits"], answer["billed"], answer["available"]) == ("10", "4", "6")

    def test_a_value_priced_type_needs_an_amount(self, client_with_key):
        version = plan_load("share", outcomes=[{"type": "saving", "percentage": "10"}])
        customer = customer_create(external_id="acme")
        Subscription.objects.create(
            customer=customer, plan=version.plan, started_at=timezone.now() - timedelta(days=1)
        )

        refused = client_with_key.post(
            AUTHORIZE, {"outcome_type": "saving", "quantity": 1}, format="json"
        )

        assert refused.status_code == 400
        assert refused.json()["errors"][0]["field"] == "outcome_type"

    def test_the_same_id_again_is_the_same_reservation(self, client_with_key):
        make_acme()

        first = authorize(client_with_key, id="call-1", amount="4")
        again = authorize(client_with_key, id="call-1", amount="4")

        assert again["reservation"]["id"] == first["reservation"]["id"]
        assert again["available"]["reserved"] == "4"

    def test_a_customer_without_a_plan_is_a_409(self, client_with_key):
        customer_create(external_id="acme")

        response = client_with_key.post(AUTHORIZE, {"amount": "1"}, format="json")

        assert response.status_code == 409
        assert response.json()["errors"][0]["code"] == "no_plan"

    def test_settled_and_released_reservations_stop_holding_and_do_so_once(self, client_with_key):
        make_acme()
        kept = authorize(client_with_key, amount="4")["reservation"]["id"]
        dropped = authorize(client_with_key, amount="3")["reservation"]["id"]

        settle = lambda: client_with_key.post(  # noqa: E731
            f"/v1/reservations/{kept}/settle", {"amount": "3.5"}, format="json"
        )
        settled, settled_again = settle(), settle()
        released = client_with_key.post(f"/v1/reservations/{dropped}/release")
        released_again = client_with_key.post(f"/v1/reservations/{dropped}/release")
        too_late = client_with_key.post(f"/v1/reservations/{kept}/release")

        assert (settled.status_code, settled_again.status_code) == (200, 200)
        assert settled.json()["settled_amount"] == "3.5"
        assert (released.status_code, released_again.status_code) == (200, 200)
        assert released.json()["status"] == "released"
        assert too_late.status_code == 409
        available = client_with_key.get("/v1/customers/acme/available").json()
        assert available["reserved"] == "0"

    def test_usage_that_names_its_reservation_settles_it(self, client_with_key):
        make_acme()
        by_call = authorize(client_with_key, amount="2")["reservation"]["id"]
        by_outcome = authorize(client_with_key, outcome_type="resolution", quantity=1)
        assert by_outcome["amount"] == "0"  # the month's first is included: a $0 reservation
        other = customer_create(external_id="other")
        theirs = Reservation.objects.create(
            public_id="res_theirs", customer=other, external_id="x", currency="USD",
            amount=Decimal(1), expires_at=timezone.now() + timedelta(minutes=5),
        )  # fmt: skip

        call = {"id": "call-1", "customer": "acme", "cost": "0.01", "reservation": by_call}
        stolen = {"id": "call-2", "customer": "acme", "cost": "0.01", "reservation": "res_theirs"}
        outcome = {
            "id": "o-1", "customer": "acme", "type": "resolution", "status": "succeeded",
            "reservation": by_outcome["reservation"]["id"],
        }  # fmt: skip
        for path, body in (("/v1/events", call), ("/v1/events", stolen), ("/v1/outcomes", outcome)):
            assert client_with_key.post(path, body, format="json").status_code == 200

        statuses = dict(Reservation.objects.values_list("public_id", "status"))
        assert statuses[by_call] == statuses[by_outcome["reservation"]["id"]] == "settled"
        assert statuses[theirs.public_id] == "open"  # another customer's: untouched
        available = client_with_key.get("/v1/customers/acme/available").json()
        assert available["reserved"] == "0"

    def test_a_reservation_nobody_settles_expires_once_at_its_time(self, client_with_key):
        make_acme()
        answer = authorize(client_with_key, amount="4", ttl_seconds=60)
        reservation = Reservation.objects.get(public_id=answer["reservation"]["id"])

        assert reservations_expire(now=reservation.expires_at - timedelta(seconds=1)) == 0
        assert reservations_expire(now=reservation.expires_at) == 1
        assert reservations_expire(now=reservation.expires_at + timedelta(hours=1)) == 0
        reservation.refresh_from_db()
        assert reservation.status == ReservationStatus.EXPIRED
        assert authorize(client_with_key, amount="10")["allowed"] is True


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.django_db(transaction=True)
def test_fifty_concurrent_authorizations_from_four_processes_never_overspend():
    make_acme(credits="10")
    _, key = APIKey.objects.create_key(name="backend")
    port = _free_port()
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "API_KEY_RATE_LIMIT": "0",
        "GUNICORN_WORKERS": "4",
        "LOG_LEVEL": "WARNING",
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    server = subprocess.Popen(
        front.gunicorn_command(f"127.0.0.1:{port}"),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_for(lambda: _status(port, key) == 200, what="the API with four workers", timeout=60)
        answers: list[dict] = []
        start = threading.Barrier(50)

        def backend(number: int) -> None:
            start.wait()
            status, body = json_request(
                "127.0.0.1", port, "POST", AUTHORIZE, {"id": f"call-{number}", "amount": "1"},
                key=key,
            )  # fmt: skip
            assert status == 200, body
            answers.append(body)

        threads = [threading.Thread(target=backend, args=(n,)) for n in range(50)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        os.killpg(server.pid, 15)
        server.wait(timeout=30)

    assert len(answers) == 50
    assert sum(answer["allowed"] for answer in answers) == 10
    assert Reservation.objects.filter(status=ReservationStatus.OPEN).count() == 10
    assert sum(r.amount for r in Reservation.objects.all()) == Decimal(10)


@pytest.mark.django_db(transaction=True)
def test_one_customers_authorizations_queue_on_its_spend_lock():
    """What makes the test above hold: an authorization waits while another holds the
    customer's lock (here the test's own connection), then reserves."""
    customer = make_acme()
    done = threading.Event()

    def backend() -> None:
        try:
            authorize_service(
                customer=customer, request=SpendRequest(amount=Decimal(1)), now=timezone.now()
            )
            done.set()
        finally:
            connections.close_all()

    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [SPEND_LOCK, customer.pk])
        thread = threading.Thread(target=backend)
        thread.start()
        assert not done.wait(timeout=1.0), "it reserved while the lock was held"
    thread.join(timeout=30)
    assert done.is_set()
    assert Reservation.objects.filter(customer=customer).count() == 1


def _status(port: int, key: str) -> int:
    try:
        status, _ = json_request("127.0.0.1", port, "GET", "/v1/customers/acme/available", key=key)
        return status
    except OSError:
        return 0


@pytest.mark.django_db
class TestBudgets:
    def test_a_budget_refuses_what_the_period_would_bill_past_it(self, client_with_key):
        customer = make_acme()
        spend_limit_set(customer=customer, mode=LimitMode.HARD, credits=False, budget=Decimal(10))

        first = authorize(client_with_key, amount="6")
        refused = authorize(client_with_key, amount="5")
        fits = authorize(client_with_key, amount="4")

        assert (first["allowed"], refused["allowed"], fits["allowed"]) == (True, False, True)
        assert refused["exceeds"] == ["budget"]
        assert fits["available"]["budget_left"] == "0"

    def test_a_cost_budget_reached_refuses_everything_under_a_hard_limit(self, client_with_key):
        customer = make_acme()
        spend_limit_set(
            customer=customer, mode=LimitMode.HARD, credits=False, cost_budget=Decimal(3)
        )
        UsageEvent.objects.create(
            event_id="call-1", customer=customer, timestamp=_earlier_this_month(),
            received_at=timezone.now(), cost=Decimal(3), cost_source="explicit",
        )  # fmt: skip

        answer = authorize(client_with_key, amount="0.01")

        assert (answer["allowed"], answer["exceeds"]) == (False, ["cost_budget"])
        assert answer["available"]["cost"] == "3"

    def test_a_premium_seat_past_its_fair_use_cap_is_refused_under_a_hard_limit(
        self, client_with_key
    ):
        """Stop serving one premium user whose AI has cost its cap this period; the other
        seats, and requests naming no seat, go on."""
        customer = make_acme()
        spend_limit_set(
            customer=customer, mode=LimitMode.HARD, fair_use=True, seat_cost_cap=Decimal(2)
        )
        an_hour_ago = _earlier_this_month()
        for number, (user, cost) in enumerate([("heavy", "1.5"), ("heavy", "0.5"), ("light", "1")]):
            UsageEvent.objects.create(
                event_id=f"call-{number}", customer=customer, timestamp=an_hour_ago,
                received_at=an_hour_ago, cost=Decimal(cost), cost_source="explicit",
                tier="premium", end_user=user,
            )  # fmt: skip

        heavy = authorize(client_with_key, amount="1", user="heavy")
        light = authorize(client_with_key, amount="1", user="light")
        nobody = authorize(client_with_key, amount="1")
        seat = client_with_key.get("/v1/customers/acme/available?user=heavy").json()["seat"]

        assert (heavy["allowed"], heavy["exceeds"], heavy["reservation"]) == (
            False,
            ["fair_use"],
            None,
        )
        assert heavy["available"]["seat"] == {"user": "heavy", "cost": "2", "cap": "2"}
        assert (light["allowed"], light["exceeds"]) == (True, [])
        assert light["available"]["seat"]["cost"] == "1"
        assert (nobody["allowed"], nobody["available"]["seat"]) == (True, None)
        assert seat == {"user": "heavy", "cost": "2", "cap": "2"}

    def test_the_plans_fair_use_cap_comes_from_last_months_premium_break_even(self):
        """No cap of its own: the seat is held to its plan's cap, which the job computes
        from the last whole month as the premium break-even report does; under a soft
        limit it is allowed and said to exceed; without fair use it is not checked."""
        version = plan_load(
            "premium-seats", premium_seat_fee="10", premium_target_margin_percent="50"
        )
        customer = customer_create(external_id="acme")
        now = datetime(2026, 11, 20, tzinfo=UTC)
        Subscription.objects.create(
            customer=customer, plan=version.plan, started_at=datetime(2026, 9, 1, tzinfo=UTC)
        )
        october = datetime(2026, 10, 10, tzinfo=UTC)
        # October's four seats cost 1, 2, 3 and 18 (24) for 40 of fees; keeping 50 % leaves
        # 20 for AI: capped at c, 1 + 2 + 3 + c = 20, so c = 14.
        for number, cost in enumerate(["1", "2", "3", "18"]):
            UsageEvent.objects.create(
                event_id=f"october-{number}", customer=customer, timestamp=october,
                received_at=october, cost=Decimal(cost), cost_source="explicit",
                tier="premium", end_user=f"seat-{number}",
            )  # fmt: skip
        UsageEvent.objects.create(
            event_id="november-0", customer=customer, timestamp=now - timedelta(days=1),
            received_at=now, cost=Decimal(14), cost_source="explicit", tier="premium",
            end_user="seat-3",
        )  # fmt: skip
        one = SpendRequest(amount=Decimal(1), user="seat-3")

        spend_limit_set(customer=customer, mode=LimitMode.SOFT, credits=False, fair_use=True)
        before = authorize_service(customer=customer, request=one, now=now)
        assert fair_use_caps_compute(now=now) == 1
        capped = authorize_service(customer=customer, request=one, now=now)
        spend_limit_set(customer=customer, mode=LimitMode.HARD, credits=False, fair_use=False)
        unchecked = authorize_service(customer=customer, request=one, now=now)

        assert FairUseCap.objects.get(plan=version.plan).cap == Decimal(14)
        assert (before.allowed, before.exceeds, before.available.seat_cap) == (True, [], None)
        assert (capped.allowed, capped.exceeds) == (True, ["fair_use"])
        assert (capped.available.seat.cost, capped.available.seat_cap) == (14, 14)
        assert (unchecked.allowed, unchecked.exceeds) == (True, [])

    def test_budgets_start_afresh_at_each_period_boundary_in_the_customers_timezone(self):
        # Paris: October runs from 22:00 UTC on September 30 (summer time) to 23:00 UTC
        # on October 31 (winter time since October 25).
        version = plan_load(
            "per-resolution", outcomes=[{"type": "resolution", "unit_price": "2.00"}]
        )
        customer = customer_create(external_id="acme")
        Subscription.objects.create(
            customer=customer, plan=version.plan, timezone="Europe/Paris",
            started_at=datetime(2026, 8, 31, 22, tzinfo=UTC),
        )  # fmt: skip
        spend_limit_set(customer=customer, mode=LimitMode.HARD, credits=False, budget=Decimal(10))
        late_october = datetime(2026, 10, 31, 22, 30, tzinfo=UTC)  # 23:30 in Paris
        for number in range(5):
            Outcome.objects.create(
                external_id=f"o-{number}", customer=customer, type="resolution",
                status="succeeded", occurred_at=late_october, succeeded_at=late_october,
                succeeded_recorded_at=late_october,
            )  # fmt: skip
        one = SpendRequest(amount=Decimal(1))

        october = authorize_service(
            customer=customer, request=one, now=datetime(2026, 10, 31, 22, 59, tzinfo=UTC)
        )
        november = authorize_service(
            customer=customer, request=one, now=datetime(2026, 10, 31, 23, tzinfo=UTC)
        )

        assert (october.allowed, october.exceeds) == (False, ["budget"])
        assert (october.available.period_start, october.available.period_end) == (
            datetime(2026, 9, 30, 22, tzinfo=UTC),
            datetime(2026, 10, 31, 23, tzinfo=UTC),
        )
        assert october.available.billed == Decimal(10)
        assert (november.allowed, november.available.billed) == (True, Decimal(0))
        assert november.available.budget_left == Decimal(9)


def _earlier_this_month() -> datetime:
    """An hour ago, or halfway to now in a month's first hour: in the running period."""
    now = timezone.now()
    month_start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return now - min(timedelta(hours=1), (now - month_start) / 2)
