"""The running rollup (billing/invoicing/selectors/running.py) says what a scan of the facts
says, whatever wrote them: batches small and large, calls before and after the outcome
they name, repricing, outcome moves, deletions, and two transactions at once. Every check
compares the rollup's reading with the scan's (`running=False`, or the facts counted
here), for windows with whole and partial UTC days, in several timezones: cells, seats,
outcomes, and the dashboard's days of every customer."""

import io
import json
import threading
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from django.core.management import call_command
from django.db import connection, transaction
from django.utils import timezone

from billing.analytics.selectors.margins import window_outcomes
from billing.invoicing.folding import running_fold
from billing.invoicing.models import RunningCell, RunningHorizon
from billing.invoicing.selectors.cells import PeriodUsage, Window, windows_usage
from billing.invoicing.selectors.rating import outcome_quantities
from billing.invoicing.selectors.running import (
    running_daily_costs,
    running_daily_successes,
    running_seat_cost,
    running_seat_costs,
)
from billing.plans.pricing import PlanTerms
from metering.models import Customer, UsageEvent
from metering.schemas import parse_event_batch
from metering.services import events_ingest
from metering.services.prices import events_price_unpriced
from outcomes.models import Outcome, OutcomeStatus
from outcomes.schemas import parse_outcome_batch
from outcomes.services import outcome_reverse, outcomes_record
from tests.metering.factories import customer_create, event_payload, override_create

pytestmark = pytest.mark.django_db(transaction=True)

NOVEMBER = datetime(2026, 11, 1, tzinfo=UTC)
DECEMBER = datetime(2026, 12, 1, tzinfo=UTC)


def local_month(zone: str) -> tuple[datetime, datetime]:
    tz = ZoneInfo(zone)
    return datetime(2026, 11, 1, tzinfo=tz), datetime(2026, 12, 1, tzinfo=tz)


# Windows of whole days, of partial days at either end (periods in other timezones, one
# crossing a DST change, a report up to an hour of the day), of less than a day.
WINDOWS = [
    (NOVEMBER, DECEMBER),
    local_month("Asia/Kolkata"),
    local_month("America/New_York"),  # DST ends on 1 November 2026
    local_month("Pacific/Chatham"),
    (NOVEMBER, NOVEMBER + timedelta(days=17, hours=9, minutes=30)),
    (NOVEMBER + timedelta(days=3, hours=5), NOVEMBER + timedelta(days=3, hours=20)),
    (NOVEMBER - timedelta(days=40), DECEMBER + timedelta(days=40)),
]


def ingest(events: list[dict]) -> None:
    body = json.dumps({"events": events}).encode()
    events_ingest(events=parse_event_batch(body, now=timezone.now()))


def record(outcomes: list[dict]) -> None:
    body = json.dumps({"outcomes": outcomes}).encode()
    outcomes_record(outcomes=parse_outcome_batch(body, now=timezone.now()))


def call(customer: str, at: datetime, **fields: object) -> dict:
    return event_payload(customer, timestamp=at.isoformat(), **fields)


def usage_rows(usage: PeriodUsage) -> tuple[object, ...]:
    cells = [(c.key, c.calls, c.tokens, c.cost, c.unpriced_calls) for c in usage.cells]
    return (cells, usage.active_seats)


def assert_running_is_the_scan() -> None:
    """For every customer and window: cells in detail and by feature, active seats,
    outcome counts."""
    windows = [
        Window(customer.pk, start, end)
        for customer in Customer.objects.all()
        for start, end in WINDOWS
    ]
    for detail in (True, False):
        running = windows_usage(windows=windows, detail=detail)
        scanned = windows_usage(windows=windows, detail=detail, running=False)
        for window in windows:
            assert usage_rows(running[window]) == usage_rows(scanned[window]), (window, detail)
    no_terms = {window: PlanTerms(code="", version=1, currency="USD") for window in windows}
    running_counts = outcome_quantities(windows=windows, terms=no_terms)
    scanned_counts = outcome_quantities(windows=windows, terms=no_terms, running=False)
    for window in windows:
        assert running_counts[window].quantities == scanned_counts[window].quantities, window
    for customer_id, start, end, _ in windows:
        for user in {"user-0", "user-2", "u-0", "nobody"}:
            scanned_cost = sum(
                (
                    call.cost or 0
                    for call in UsageEvent.objects.filter(
                        customer_id=customer_id, tier="premium", end_user=user,
                        timestamp__gte=start, timestamp__lt=end,
                    )
                ),
                Decimal(0),
            )  # fmt: skip
            cost = running_seat_cost(customer_id=customer_id, user=user, start=start, end=end)
            assert cost == scanned_cost, (customer_id, user, start)
    for start, end in WINDOWS:
        # Each customer its own "plan": its seats' costs, sorted.
        customers = {customer_id: customer_id for customer_id, *_ in windows}
        seats = running_seat_costs(start=start, end=end, plans=customers)
        scanned_seats: dict[tuple[int, str], Decimal] = {}
        for premium in UsageEvent.objects.filter(
            tier="premium", timestamp__gte=start, timestamp__lt=end
        ).exclude(end_user=""):
            key = (premium.customer_id, premium.end_user)
            scanned_seats[key] = scanned_seats.get(key, Decimal(0)) + (premium.cost or 0)
        scanned_by_customer: dict[int, list[Decimal]] = {}
        for (customer_id, _user), cost in sorted(scanned_seats.items(), key=lambda s: s[1]):
            scanned_by_customer.setdefault(customer_id, []).append(cost)
        assert seats == scanned_by_customer, (start, end)
    for start, end in WINDOWS:
        assert running_daily_costs(start=start, end=end) == scanned_daily_costs(start, end)
        assert running_daily_successes(start=start, end=end) == scanned_successes(start, end)
    by_status = window_outcomes(windows=windows)
    for customer_id, start, end, _ in windows:
        expected: dict[str, tuple[int, int, int]] = {}
        for outcome in Outcome.objects.filter(customer_id=customer_id):
            moment = outcome.failed_at if outcome.status == "failed" else outcome.succeeded_at
            if outcome.status == "pending" or not (start <= moment < end):
                continue
            position = ["succeeded", "failed", "reversed"].index(outcome.status)
            counts = list(expected.get(outcome.type, (0, 0, 0)))
            counts[position] += 1
            expected[outcome.type] = tuple(counts)  # type: ignore[assignment]
        assert by_status[(customer_id, start)] == expected, (customer_id, start)


def scanned_daily_costs(start: datetime, end: datetime) -> list[tuple[object, ...]]:
    """Every call of [start, end) by UTC day, model and the type of the outcome it names
    (its customer's), call by call: what the dashboard's daily charts read."""
    types = {(o.customer_id, o.external_id): o.type for o in Outcome.objects.all()}
    days: dict[tuple[object, ...], tuple[int, Decimal]] = {}
    for event in UsageEvent.objects.filter(timestamp__gte=start, timestamp__lt=end):
        outcome_type = types.get((event.customer_id, event.outcome_ref), "")
        key = (event.timestamp.astimezone(UTC).date(), event.provider, event.model, outcome_type)
        calls, cost = days.get(key, (0, Decimal(0)))
        days[key] = (calls + 1, cost + (event.cost or 0))
    return [(*key, calls, cost) for key, (calls, cost) in sorted(days.items())]


def scanned_successes(start: datetime, end: datetime) -> list[tuple[object, ...]]:
    days: dict[tuple[object, ...], int] = {}
    for outcome in Outcome.objects.filter(
        status="succeeded", succeeded_at__gte=start, succeeded_at__lt=end
    ):
        key = (outcome.succeeded_at.astimezone(UTC).date(), outcome.type)
        days[key] = days.get(key, 0) + 1
    return [(*key, count) for key, count in sorted(days.items())]


@pytest.fixture(autouse=True)
def fixed_dates(settings) -> None:
    settings.METERING_LATE_EVENT_WINDOW_DAYS = 3650  # the dates here are fixed, the clock is not


def horizon_set(day: date | None) -> None:
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM invoicing_runninghorizon")
        if day is not None:
            cursor.execute("INSERT INTO invoicing_runninghorizon (id, day) VALUES (1, %s)", [day])


# Every test with nothing in the rollup (every call read one by one), with its horizon in
# the middle of the windows (the triggers add the facts of the days before), and with
# every day in it.
@pytest.fixture(autouse=True, params=[None, date(2026, 11, 15), date(2027, 6, 1)])
def horizon(request) -> date | None:
    horizon_set(request.param)
    return request.param


def started(work: Callable[[], object], errors: list[BaseException]) -> threading.Thread:
    """`work` in a thread of its own, on a connection of its own; what it raises goes to
    `errors`, for the test to report."""

    def guarded() -> None:
        try:
            work()
        except BaseException as error:
            errors.append(error)
        finally:
            connection.close()

    thread = threading.Thread(target=guarded)
    thread.start()
    return thread


def waits_for_an_open_transaction(write: Callable[[], object], then: Callable[[], object]) -> None:
    """Run `write` in a transaction of another connection held open, then `then` in a
    third: `then` must still be waiting a second later; once the first commits, both
    finish without an error."""
    written, release = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def held_open() -> None:
        with transaction.atomic():
            write()
            written.set()
            release.wait(10)

    writer = started(held_open, errors)
    assert written.wait(10) and not errors
    waiting = started(then, errors)
    waiting.join(1)
    assert waiting.is_alive(), "it waits for the open transaction"
    release.set()
    writer.join(10)
    waiting.join(10)
    assert not errors


@pytest.fixture
def customers() -> list[Customer]:
    return [customer_create(external_id=name) for name in ("acme", "globex")]


def spread_calls(customer: str, count: int, **fields: object) -> list[dict]:
    """Calls every 7 hours and 13 minutes from mid-October: across days, month ends and
    the DST change, with features, tiers, models and premium users varied."""
    start = NOVEMBER - timedelta(days=20)
    return [
        call(
            customer,
            start + i * timedelta(hours=7, minutes=13),
            feature=["chat", "search", ""][i % 3],
            tier="premium" if i % 4 == 0 else "",
            user=f"user-{i % 5}" if i % 2 == 0 else "",
            **{"model": ["gpt-4o", "gpt-4o-mini"][i % 2], **fields},
        )
        for i in range(count)
    ]


def test_batches_small_and_large_are_counted_as_the_calls_are(customers, settings):
    settings.METERING_COPY_THRESHOLD = 20
    ingest(spread_calls("acme", 15))  # one statement of values
    ingest(spread_calls("acme", 150) + spread_calls("globex", 90))  # copied, then merged
    ingest(spread_calls("acme", 15)[:3])  # already there: nothing changes
    assert_running_is_the_scan()


def test_a_call_is_counted_under_the_outcome_it_names_whichever_comes_first(customers):
    at = NOVEMBER + timedelta(days=4, hours=3)
    record([{"id": "first", "customer": "acme", "type": "resolution", "timestamp": at.isoformat()}])
    ingest([call("acme", at, outcome="first"), call("acme", at, outcome="later")])
    assert_running_is_the_scan()
    record(
        [
            {"id": "later", "customer": "acme", "type": "triage", "timestamp": at.isoformat()},
            # Another customer's outcome a call names does not type the call.
            {"id": "theirs", "customer": "globex", "type": "resolution", "status": "succeeded",
             "timestamp": at.isoformat()},
        ]
    )  # fmt: skip
    ingest([call("acme", at, outcome="theirs")])
    detail = windows_usage(windows=[Window(customers[0].pk, NOVEMBER, DECEMBER)])
    [usage] = detail.values()
    assert sorted((c.outcome_type, c.calls) for c in usage.cells) == [
        ("", 1),
        ("resolution", 1),
        ("triage", 1),
    ]
    assert_running_is_the_scan()


def test_outcomes_moving_are_counted_where_they_stand(customers):
    at = NOVEMBER + timedelta(days=10, hours=23, minutes=59)
    record(
        [
            {"id": f"o-{i}", "customer": "acme", "type": "resolution",
             "timestamp": (at + timedelta(hours=i)).isoformat()}
            for i in range(6)
        ]
    )  # fmt: skip
    ingest([call("acme", at, outcome=f"o-{i}") for i in range(6)])
    later = (at + timedelta(days=1)).isoformat()
    record(
        [{"id": f"o-{i}", "status": "succeeded", "timestamp": later} for i in range(4)]
        + [{"id": "o-4", "status": "failed", "timestamp": later}]
    )
    assert_running_is_the_scan()
    outcome_reverse(external_id="o-1", window=timedelta(days=3650), now=timezone.now())
    assert_running_is_the_scan()
    Outcome.objects.filter(external_id="o-2").update(type="escalation")  # an operator's fix
    Outcome.objects.filter(external_id="o-3").delete()
    assert_running_is_the_scan()
    assert Outcome.objects.filter(status=OutcomeStatus.REVERSED).count() == 1


def test_repricing_and_deleting_calls_change_the_counts(customers):
    ingest(spread_calls("acme", 40, provider="self-hosted", model="llama-3-8b-distilled"))
    ingest(spread_calls("globex", 10))
    everything = Window(customers[0].pk, *WINDOWS[-1])
    [usage] = windows_usage(windows=[everything]).values()
    assert usage.unpriced_calls == usage.calls == 40  # no price yet
    override_create(effective_from=NOVEMBER - timedelta(days=60))
    assert events_price_unpriced(provider="self-hosted", model="llama-3-8b-distilled") == 40
    [usage] = windows_usage(windows=[everything]).values()
    assert usage.unpriced_calls == 0 and usage.cost > 0
    assert_running_is_the_scan()
    with connection.cursor() as cursor:
        cursor.execute(
            "DELETE FROM metering_usageevent WHERE customer_id = %s AND tier = 'premium'",
            [customers[0].pk],
        )
    assert_running_is_the_scan()


def test_a_call_and_its_outcome_written_at_once_see_each_other(customers):
    """A call of a day the rollup holds (a late one): its transaction holds its
    customer's lock until it commits; the outcome's waits for it, then sees the call and
    counts it under its type. (Without the lock neither would see the other, and the
    call would stay untyped. A call of a day read call by call is typed as it is read.)"""
    horizon_set(date(2027, 6, 1))
    at = NOVEMBER + timedelta(days=2)
    outcome = {
        "id": "racing",
        "customer": "acme",
        "type": "resolution",
        "timestamp": at.isoformat(),
    }
    waits_for_an_open_transaction(
        lambda: ingest([call("acme", at, outcome="racing")]), lambda: record([outcome])
    )
    [usage] = windows_usage(windows=[Window(customers[0].pk, NOVEMBER, DECEMBER)]).values()
    assert [(c.outcome_type, c.calls) for c in usage.cells] == [("resolution", 1)]
    assert_running_is_the_scan()


def test_batches_of_calls_and_outcomes_over_the_same_customers_never_deadlock(settings):
    """Batches of calls lock their customers in one statement, in order; a batch of
    outcomes creates some and moves others (two statements), so it locks all its
    customers first. Both kinds, over the same customers in every order, at once."""
    settings.METERING_COPY_THRESHOLD = 20
    names = [f"c-{i}" for i in range(12)]
    for name in names:
        customer_create(external_id=name)
    at = NOVEMBER + timedelta(days=1)
    record(
        [{"id": f"{name}-{k}", "customer": name, "type": "resolution", "timestamp": at.isoformat()}
         for name in names for k in range(4)]
    )  # fmt: skip
    errors: list[BaseException] = []

    def calls(seed: int) -> None:
        for round_ in range(6):
            order = names[seed:] + names[:seed] if round_ % 2 else names[::-1]
            ingest(
                [
                    call(name, NOVEMBER + timedelta(hours=seed * 7 + round_), tier="premium",
                         user=f"u-{seed}", outcome=f"{name}-{round_ % 4}")
                    for name in order
                    for _ in range(3 if round_ % 3 else 1)
                ]
            )  # fmt: skip

    def outcomes(seed: int) -> None:
        for round_ in range(4):
            order = names[::-1] if seed % 2 else names
            moved = [{"id": f"{name}-{round_}", "status": "succeeded",
                      "timestamp": at.isoformat()} for name in order[seed::2]]  # fmt: skip
            created = [{"id": f"{name}-new-{seed}-{round_}", "customer": name,
                        "type": "triage", "timestamp": at.isoformat()}
                       for name in order[1 - seed % 2::2]]  # fmt: skip
            record(created + moved)

    threads = [started(lambda seed=seed: calls(seed), errors) for seed in range(3)] + [
        started(lambda seed=seed: outcomes(seed), errors) for seed in range(2)
    ]
    for thread in threads:
        thread.join(60)
    assert not errors
    assert_running_is_the_scan()


def test_days_folded_in_read_as_they_did_call_by_call(customers):
    """The fold sums each day that is over into the rollup and moves the horizon past
    it: the readings do not change, and facts of folded days that arrive later are added
    by the triggers."""
    horizon_set(date(2026, 10, 1))
    ingest(spread_calls("acme", 120) + spread_calls("globex", 40))
    at = NOVEMBER + timedelta(days=2)
    record([{"id": "o-1", "customer": "acme", "type": "resolution", "status": "succeeded",
             "timestamp": at.isoformat()}])  # fmt: skip
    assert_running_is_the_scan()

    folded = running_fold(now=datetime(2026, 12, 5, 12, tzinfo=UTC))

    assert folded == 31 + 30 + 3  # October, November, December up to the day before yesterday
    assert RunningHorizon.objects.get().day == date(2026, 12, 4)
    assert RunningCell.objects.exists()
    assert_running_is_the_scan()
    ingest([call("acme", NOVEMBER + timedelta(days=9), outcome="o-1", tier="premium",
                 user="late")])  # fmt: skip
    record([{"id": "o-2", "customer": "globex", "type": "triage", "status": "failed",
             "timestamp": at.isoformat()}])  # fmt: skip
    assert_running_is_the_scan()
    assert running_fold(now=datetime(2026, 12, 5, 23, tzinfo=UTC)) == 0  # nothing more yet


def test_a_fold_waits_for_the_facts_of_its_day_being_written(customers):
    """A batch of calls of a day being folded, written before the fold and committed after
    it started: the fold waits for it, and its sums hold the calls."""
    horizon_set(date(2026, 11, 3))
    waits_for_an_open_transaction(
        lambda: ingest([call("acme", NOVEMBER + timedelta(days=2, hours=h)) for h in range(5)]),
        lambda: running_fold(now=datetime(2026, 11, 5, tzinfo=UTC)),
    )
    assert RunningHorizon.objects.get().day == date(2026, 11, 4)
    assert RunningCell.objects.get(customer=customers[0]).calls == 5
    assert_running_is_the_scan()


def test_the_command_folds_what_the_beat_would(customers):
    horizon_set(date(2026, 11, 1))
    ingest(spread_calls("acme", 30))
    out = io.StringIO()

    call_command("fold_running_days", stdout=out)

    yesterday = timezone.now().astimezone(UTC).date() - timedelta(days=1)
    assert RunningHorizon.objects.get().day == yesterday
    assert out.getvalue().endswith(f"the running rollup holds the days before {yesterday}\n")
    assert_running_is_the_scan()


def test_a_rollup_that_drifted_is_rebuilt_from_the_facts(customers):
    """Rows edited by hand (or triggers disabled during a bulk load) make the rollup
    wrong; `fold_running_days --rebuild` empties it and sums every day in again."""
    horizon_set(date(2026, 12, 1))
    ingest(spread_calls("acme", 60))
    RunningCell.objects.filter(customer=customers[0]).update(calls=999)
    window = Window(customers[0].pk, *WINDOWS[-1])
    assert windows_usage(windows=[window])[window].calls != (
        windows_usage(windows=[window], running=False)[window].calls
    )

    call_command("fold_running_days", "--rebuild", stdout=io.StringIO())

    assert RunningCell.objects.filter(calls=999).count() == 0
    assert RunningHorizon.objects.get().day == timezone.now().astimezone(UTC).date() - timedelta(
        days=1
    )
    assert_running_is_the_scan()


def test_two_folds_at_once_fold_each_day_once(customers):
    """The beat's job and an operator's command at the same moment: the second waits for
    the first's day, then finds it folded; every day is summed once."""
    horizon_set(date(2026, 10, 1))
    ingest(spread_calls("acme", 120) + spread_calls("globex", 40))
    folded: list[int] = []
    errors: list[BaseException] = []

    def fold() -> None:
        folded.append(running_fold(now=datetime(2026, 12, 5, 12, tzinfo=UTC)))

    threads = [started(fold, errors) for _ in range(2)]
    for thread in threads:
        thread.join(60)

    assert not errors
    assert sum(folded) == 31 + 30 + 3
    assert RunningHorizon.objects.get().day == date(2026, 12, 4)
    assert_running_is_the_scan()
