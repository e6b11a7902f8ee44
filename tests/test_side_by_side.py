"""Independent reads at once (common/concurrency.py): each on a connection of its own
outside a transaction, with the caller's context; in turn on the caller's connection
inside one, where another connection would not see what it wrote."""

import threading
from contextvars import ContextVar

import pytest
from django.db import connection, transaction

from common.concurrency import Once, side_by_side
from metering.models import Customer
from tests.metering.factories import customer_create


def backend_pid() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


def where() -> tuple[str, int]:
    return threading.current_thread().name, backend_pid()


@pytest.mark.django_db(transaction=True)
def test_outside_a_transaction_each_read_has_a_connection_of_its_own():
    caller = where()

    found = side_by_side({"one": where, "two": where, "three": where}, workers=3)

    assert list(found) == ["one", "two", "three"]  # in the order asked
    threads = {name for name, _ in found.values()}
    pids = {pid for _, pid in found.values()}
    assert caller[0] not in threads and caller[1] not in pids
    assert all(name.startswith("side-by-side") for name in threads)
    # Each worker closed its connection when done: none of them is left open.
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(%s)", [list(pids)])
        assert cursor.fetchone()[0] == 0


ASKED_BY: ContextVar[str] = ContextVar("asked_by", default="nobody")


@pytest.mark.django_db(transaction=True)
def test_the_callers_context_goes_with_each_read_and_an_error_comes_back():
    def fails() -> None:
        raise ValueError("the report failed")

    token = ASKED_BY.set("the dashboard")  # as replica_reads() sets its flag
    try:
        found = side_by_side({"one": ASKED_BY.get, "two": ASKED_BY.get}, workers=2)
    finally:
        ASKED_BY.reset(token)

    assert found == {"one": "the dashboard", "two": "the dashboard"}
    with pytest.raises(ValueError, match="the report failed"):
        side_by_side({"fine": where, "fails": fails}, workers=2)


@pytest.mark.django_db(transaction=True)
def test_inside_a_transaction_the_reads_see_its_writes():
    caller = where()
    with transaction.atomic():
        customer_create(external_id="uncommitted")

        def count() -> int:
            return Customer.objects.filter(external_id="uncommitted").count()

        found = side_by_side({"count": count, "where": where}, workers=3)

    assert found == {"count": 1, "where": caller}  # on the caller's thread and connection


def test_a_value_several_reads_need_is_made_once_and_shared():
    made = []
    started = threading.Event()

    def make() -> list[int]:
        made.append(threading.current_thread().name)
        started.set()
        threading.Event().wait(0.2)  # long enough for the others to ask meanwhile
        return [1, 2, 3]

    shared = Once(make)

    def first() -> list[int]:
        return shared()

    def later() -> list[int]:
        started.wait(5)  # asks while the first is still making it
        return shared()

    found = side_by_side({"first": first, "second": later, "third": later}, workers=3)

    assert len(made) == 1
    assert found["first"] is found["second"] is found["third"]
    assert found["first"] == [1, 2, 3]


def test_a_value_that_failed_to_be_made_is_tried_again():
    attempts = []

    def make() -> str:
        attempts.append(1)
        if len(attempts) == 1:
            raise RuntimeError("the database went away")
        return "made"

    shared = Once(make)

    with pytest.raises(RuntimeError, match="went away"):
        shared()
    assert shared() == "made"
    assert shared() == "made"
    assert len(attempts) == 2
