"""The events table's monthly partitions: created ahead, late events caught by the
default partition and moved to their month, old months detached for retention, and the
migration that partitions an existing table."""

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection, transaction
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from api.errors import ApiError
from config.celery import app as celery_app
from metering.models import UsageEvent
from metering.selectors import event_partitions, events_by_client_id
from metering.services import event_partition_detach, event_partitions_ensure
from metering.services.partitions import DEFAULT_PARTITION, EVENTS_TABLE, Month, partition_attach
from metering.tasks import ensure_event_partitions
from tests.metering.factories import customer_create, event_payload

pytestmark = pytest.mark.django_db


def migrate_to_latest() -> None:
    """Back to the newest migration of every app (migrating metering back unapplies what
    depends on it)."""
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())


def rows_in(table: str) -> int:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM {table}")  # noqa: S608 -- a test's constant
        return cursor.fetchone()[0]


def attached() -> list[str]:
    return [p.name for p in event_partitions() if p.attached and p.month is not None]


def post_event(client, customer, event_id: str, at: datetime):
    body = event_payload(customer, id=event_id, timestamp=at.isoformat())
    return client.post("/v1/events", body, format="json")


def test_the_events_table_is_partitioned_by_month_of_timestamp():
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT partstrat, pg_get_partkeydef(partrelid) FROM pg_partitioned_table"
            " WHERE partrelid = %s::regclass",
            [EVENTS_TABLE],
        )
        assert cursor.fetchone() == ("r", 'RANGE ("timestamp")')


def test_this_month_and_the_months_ahead_have_partitions(settings):
    month = Month.of(timezone.now())
    months = [month.next(i).partition for i in range(settings.METERING_EVENT_PARTITIONS_AHEAD + 1)]

    assert set(months) <= set(attached())


def test_an_event_is_stored_in_its_months_partition(client_with_key):
    customer = customer_create(external_id="acme")
    now = timezone.now()

    response = post_event(client_with_key, customer, "call-1", now - timedelta(seconds=5))

    assert response.status_code == 200, response.content
    assert rows_in(Month.of(now - timedelta(seconds=5)).partition) == 1
    assert rows_in(DEFAULT_PARTITION) == 0


def test_an_event_of_a_month_without_partition_is_stored_and_later_moved_to_its_own(
    client_with_key, settings
):
    settings.METERING_LATE_EVENT_WINDOW_DAYS = 3650
    customer = customer_create(external_id="acme")
    old = datetime(2024, 3, 15, 12, tzinfo=UTC)

    first = post_event(client_with_key, customer, "old-call", old)

    assert first.json()["accepted"] == 1
    assert rows_in(DEFAULT_PARTITION) == 1
    assert Month(2024, 3) in event_partitions_ensure()
    assert rows_in(DEFAULT_PARTITION) == 0
    assert rows_in(Month(2024, 3).partition) == 1
    # Still found, and still exactly once.
    assert events_by_client_id(event_id="old-call").count() == 1
    retry = post_event(client_with_key, customer, "old-call", old)
    assert retry.json() == {"accepted": 0, "duplicates": 1, "conflicts": []}
    assert UsageEvent.objects.filter(event_id="old-call").count() == 1


def test_ensuring_twice_creates_nothing_the_second_time():
    event_partitions_ensure()

    assert event_partitions_ensure() == []


def test_the_partitions_are_created_by_a_beat_task():
    schedule = celery_app.conf.beat_schedule["ensure-event-partitions"]
    later = timezone.now() + timedelta(days=400)

    assert schedule["task"] == ensure_event_partitions.name
    created = ensure_event_partitions.apply(kwargs={}).get()
    assert created == []  # the migration made them already
    event_partitions_ensure(now=later, ahead=0)
    assert Month.of(later).partition in attached()


@pytest.mark.django_db(transaction=True)
def test_two_processes_ensuring_at_once_create_each_month_once():
    later = timezone.now() + timedelta(days=800)
    results: list[list[Month]] = []
    errors: list[BaseException] = []
    start = threading.Barrier(2)

    def ensure() -> None:
        try:
            start.wait()
            results.append(event_partitions_ensure(now=later, ahead=2))
        except BaseException as error:  # reported below
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=ensure) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert sorted(len(created) for created in results) == [0, 3]
    assert {Month.of(later).next(i).partition for i in range(3)} <= set(attached())


def test_an_old_month_is_detached_and_its_events_are_no_longer_read(client_with_key, settings):
    settings.METERING_LATE_EVENT_WINDOW_DAYS = 3650
    customer = customer_create(external_id="acme")
    post_event(client_with_key, customer, "old-call", datetime(2024, 3, 15, tzinfo=UTC))
    post_event(client_with_key, customer, "newer-call", datetime(2024, 4, 2, tzinfo=UTC))
    event_partitions_ensure()
    settings.METERING_LATE_EVENT_WINDOW_DAYS = 35

    table = event_partition_detach(month=Month(2024, 3))

    assert table == Month(2024, 3).partition
    assert list(UsageEvent.objects.values_list("event_id", flat=True)) == ["newer-call"]
    assert rows_in(table) == 1  # kept, outside the table, for the operator to dump
    detached = [p for p in event_partitions() if p.name == table]
    assert [p.attached for p in detached] == [False]


def test_a_month_within_the_late_event_window_is_not_detached(settings):
    last_month = Month.of(timezone.now()).next(-1)
    event_partitions_ensure(now=last_month.start, ahead=0)

    with pytest.raises(ApiError) as refused:
        event_partition_detach(month=last_month)

    assert refused.value.errors[0].code == "month_still_open"
    assert last_month.partition in attached()


def test_a_month_without_partition_is_not_detached():
    with pytest.raises(ApiError) as refused:
        event_partition_detach(month=Month(2001, 1))

    assert refused.value.errors[0].code == "no_partition"


def test_the_command_lists_ensures_and_detaches(capsys, client_with_key, settings):
    settings.METERING_LATE_EVENT_WINDOW_DAYS = 3650
    customer = customer_create(external_id="acme")
    post_event(client_with_key, customer, "old-call", datetime(2024, 3, 15, tzinfo=UTC))
    settings.METERING_LATE_EVENT_WINDOW_DAYS = 35

    call_command("event_partitions", "--ensure")
    ensured = capsys.readouterr().out
    call_command("event_partitions", "--detach", "2024-03")
    detached = capsys.readouterr().out

    assert "created: 2024-03" in ensured
    assert "metering_usageevent_y2024m03" in ensured and "attached" in ensured
    assert "pg_dump -t metering_usageevent_y2024m03" in detached
    assert "DETACHED" in detached
    with pytest.raises(CommandError, match="YYYY-MM"):
        call_command("event_partitions", "--detach", "2024-13")
    with pytest.raises(CommandError, match="late event window"):
        call_command("event_partitions", "--detach", str(Month.of(timezone.now())))


@pytest.mark.django_db(transaction=True)
def test_the_migration_partitions_an_existing_table_and_keeps_every_row():
    customer = customer_create(external_id="acme")
    executor = MigrationExecutor(connection)
    executor.migrate([("metering", "0001_initial")])
    try:
        with connection.cursor() as cursor:
            cursor.execute(
                f"""INSERT INTO {EVENTS_TABLE} (id, event_id, customer_id, "timestamp",
                    received_at, provider, model, input_tokens, output_tokens,
                    cache_read_tokens, cache_write_tokens, cost, cost_source, price_version,
                    outcome_ref, end_user, feature, tier, prompt_hash, properties)
                SELECT i, 'e-' || i, %s, %s + i * interval '20 days', now(), 'openai',
                    'gpt-4o', 10, 1, 0, 0, 0.000001, 'explicit', 'explicit', '', '', '', '',
                    '', '{{}}'
                FROM generate_series(1, 30) AS i""",  # noqa: S608 -- a test's constant
                [customer.pk, datetime(2025, 1, 1, tzinfo=UTC)],
            )
            cursor.execute("SELECT relkind FROM pg_class WHERE relname = %s", [EVENTS_TABLE])
            assert cursor.fetchone() == ("r",)  # a plain table before

        MigrationExecutor(connection).migrate([("metering", "0002_partition_events")])
        migrate_to_latest()  # the model's later columns, for the ORM below

        assert UsageEvent.objects.count() == 30
        months = {Month.of(e.timestamp) for e in UsageEvent.objects.all()}
        assert {m.partition for m in months} <= set(attached())
        assert rows_in(DEFAULT_PARTITION) == 0
        assert rows_in(Month(2025, 1).partition) == 1  # the 21st
        assert rows_in(Month(2025, 2).partition) == 1  # the 10th
        # The ids are kept and new ones continue after them.
        assert UsageEvent.objects.get(event_id="e-7").pk == 7
        added = UsageEvent.objects.create(
            event_id="new", customer=customer, timestamp=timezone.now(),
            received_at=timezone.now(), cost=None, cost_source="unpriced",
        )  # fmt: skip
        assert added.pk == 31
    finally:
        migrate_to_latest()


@pytest.mark.django_db(transaction=True)
def test_ingest_into_this_month_goes_on_while_another_month_is_being_attached(client_with_key):
    customer = customer_create(external_id="acme")
    attaching, posted = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def attach_and_hold() -> None:
        """Attach a far month and keep its transaction (and its locks) open until the
        event below is posted."""
        try:
            with transaction.atomic(), connection.cursor() as cursor:
                partition_attach(cursor, Month(2031, 1))
                attaching.set()
                posted.wait(timeout=30)
                transaction.set_rollback(True)
        except BaseException as error:  # reported below
            errors.append(error)
        finally:
            attaching.set()
            connection.close()

    holder = threading.Thread(target=attach_and_hold)
    holder.start()
    attaching.wait(timeout=30)
    with connection.cursor() as cursor:  # blocked ingest fails instead of waiting
        cursor.execute("SET lock_timeout = '3s'")
    try:
        response = post_event(client_with_key, customer, "call-1", timezone.now())
    finally:
        posted.set()
        holder.join()

    assert errors == []
    assert response.status_code == 200, response.content
    assert response.json()["accepted"] == 1


@pytest.fixture
def partitions_made_here_dropped() -> Iterator[None]:
    """Drops the partitions a test's migration made for old months, so that later tests
    find those months without a partition, as a fresh database has them."""
    before = set(attached())
    yield
    with connection.cursor() as cursor:
        for name in set(attached()) - before:
            cursor.execute(f"DROP TABLE {name}")


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("partitions_made_here_dropped")
def test_the_migration_reversed_rebuilds_a_plain_table_with_every_row(client_with_key):
    customer = customer_create(external_id="acme")
    now = timezone.now()
    post_event(client_with_key, customer, "this-month", now)
    post_event(client_with_key, customer, "last-month", now - timedelta(days=31))
    UsageEvent.objects.create(
        event_id="in-the-default", customer=customer, timestamp=datetime(2023, 7, 1, tzinfo=UTC),
        received_at=now, cost=None, cost_source="unpriced",
    )  # fmt: skip
    before = sorted(UsageEvent.objects.values_list("pk", "event_id", "timestamp", "cost"))
    assert rows_in(DEFAULT_PARTITION) >= 1  # 2023-07 has no partition

    MigrationExecutor(connection).migrate([("metering", "0001_initial")])
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT relkind FROM pg_class WHERE relname = %s", [EVENTS_TABLE])
            assert cursor.fetchone() == ("r",)  # a plain table again
            cursor.execute(
                f"SELECT id, event_id, timestamp, cost FROM {EVENTS_TABLE} ORDER BY id"  # noqa: S608 -- a test's constant
            )
            assert sorted(cursor.fetchall()) == before
            cursor.execute(
                "SELECT count(*) FROM pg_class WHERE relname LIKE %s",
                [f"{EVENTS_TABLE}\\_y%"],
            )
            assert cursor.fetchone() == (0,)  # no partition left behind
    finally:
        migrate_to_latest()

    assert sorted(UsageEvent.objects.values_list("pk", "event_id", "timestamp", "cost")) == before
    # Partitioned again, every month of the rows has a partition of its own.
    assert rows_in(DEFAULT_PARTITION) == 0
    assert rows_in(Month(2023, 7).partition) == 1
