"""Delivery: at-least-once from the SDK, exactly-once with payback. Through a real proxy
that fails on purpose: rate-limit storms, outages, answers lost after the server stored
the request, bad records among good ones, processes forked with records queued."""

import multiprocessing
import os
import time

import pytest
from payback_client import Failure, Payback

from metering.models import UsageEvent
from tests.sdk.conftest import Server, client
from tests.support.flaky_proxy import FlakyProxy
from tests.support.polling import wait_for


def _record(payback: Payback, count: int, prefix: str = "") -> list[str]:
    """`count` calls of acme's; with `prefix`, their ids are the prefix and a number."""
    ids = []
    for n in range(count):
        call_id = f"{prefix}{n}" if prefix else None
        ids.append(payback.record_call(customer="acme", model="gpt-4o", input_tokens=n, id=call_id))
    return ids


def test_a_storm_of_429s_is_waited_out_and_everything_stored_once(
    server: Server, proxy: FlakyProxy, failures: list[Failure]
) -> None:
    proxy.fail_next(8, 429, Retry_After="0")
    payback = client(server, failures, url=proxy.url)

    ids = _record(payback, 50)
    assert payback.flush(timeout=60)
    payback.close()

    assert sorted(UsageEvent.objects.values_list("event_id", flat=True)) == sorted(ids)
    assert [s.answered for s in proxy.seen] == [429] * 8 + [200]
    assert payback.stats.retries == 8
    assert failures == []


def test_retry_after_is_honoured(
    server: Server, proxy: FlakyProxy, failures: list[Failure]
) -> None:
    proxy.fail_next(1, 503, Retry_After="1")
    payback = client(server, failures, url=proxy.url)

    started = time.monotonic()
    _record(payback, 3)
    assert payback.flush(timeout=30)
    waited = time.monotonic() - started
    payback.close()

    assert waited >= 1.0  # not the 0.01 s backoff
    assert UsageEvent.objects.count() == 3


def test_an_outage_then_recovery_loses_nothing(
    server: Server, proxy: FlakyProxy, failures: list[Failure]
) -> None:
    proxy.down = True
    payback = client(server, failures, url=proxy.url)

    ids = _record(payback, 20)
    wait_for(lambda: len(proxy.seen) >= 3, what="a few refused attempts")
    assert not UsageEvent.objects.exists()
    proxy.down = False
    assert payback.flush(timeout=30)
    payback.close()

    assert UsageEvent.objects.count() == 20
    assert set(UsageEvent.objects.values_list("event_id", flat=True)) == set(ids)
    assert failures == []


def test_an_answer_lost_after_the_server_stored_it_is_sent_again_and_stored_once(
    server: Server, proxy: FlakyProxy, failures: list[Failure]
) -> None:
    proxy.lose_next_answer()
    payback = client(server, failures, url=proxy.url)

    _record(payback, 10)
    assert payback.flush(timeout=30)
    payback.close()

    assert [s.answered for s in proxy.seen] == [0, 200]  # stored, unheard; sent again
    assert UsageEvent.objects.count() == 10
    assert payback.stats.delivered == 10  # the second copy: ten duplicates, all in


def test_a_bad_record_is_reported_and_never_holds_up_the_others(
    server: Server, failures: list[Failure]
) -> None:
    payback = client(server, failures, flush_interval=5)  # one batch: flush sends it

    good = _record(payback, 5)
    bad = payback.record_call(customer="nobody", model="gpt-4o", input_tokens=1)
    good += _record(payback, 5, prefix="later-")
    assert payback.flush(timeout=30)
    payback.close()

    assert set(UsageEvent.objects.values_list("event_id", flat=True)) == set(good)
    assert [(f.record.id, f.code, f.status) for f in failures] == [(bad, "unknown_customer", 400)]
    assert payback.stats.failed == 1


def test_an_id_sent_again_with_other_figures_is_reported_as_a_conflict(
    server: Server, failures: list[Failure]
) -> None:
    payback = client(server, failures)

    payback.record_call(customer="acme", model="gpt-4o", input_tokens=1, id="call-1")
    assert payback.flush(timeout=30)
    payback.record_call(customer="acme", model="gpt-4o", input_tokens=2, id="call-1")
    payback.close()

    assert UsageEvent.objects.get(event_id="call-1").input_tokens == 1  # the first is kept
    assert [(f.record.id, f.code) for f in failures] == [("call-1", "conflict")]


def test_a_batch_too_large_is_split(
    server: Server, proxy: FlakyProxy, failures: list[Failure]
) -> None:
    proxy.fail_next(1, 413)
    payback = client(server, failures, url=proxy.url, flush_interval=5)

    _record(payback, 10)
    assert payback.flush(timeout=30)
    payback.close()

    assert [(s.items, s.answered) for s in proxy.seen] == [(10, 413), (5, 200), (5, 200)]
    assert UsageEvent.objects.count() == 10


def test_a_server_error_is_retried_then_reported(
    server: Server, proxy: FlakyProxy, failures: list[Failure]
) -> None:
    proxy.fail_next(3, 500)
    payback = client(server, failures, url=proxy.url, max_attempts=3)

    ids = _record(payback, 2)
    assert payback.flush(timeout=30)
    payback.close()

    assert [s.answered for s in proxy.seen] == [500, 500, 500]
    assert sorted(f.record.id for f in failures) == sorted(ids)
    assert not UsageEvent.objects.exists()


def test_batches_are_gzipped_once_the_server_says_it_takes_gzip(
    server: Server, proxy: FlakyProxy, failures: list[Failure]
) -> None:
    payback = client(server, failures, url=proxy.url, flush_interval=5)

    _record(payback, 20)
    assert payback.flush(timeout=30)
    _record(payback, 20, prefix="second-")
    assert payback.flush(timeout=30)
    payback.close()

    assert [(s.encoding, s.items) for s in proxy.seen] == [("", 20), ("gzip", 20)]
    assert UsageEvent.objects.count() == 40


def test_closing_with_the_server_away_reports_what_was_not_sent(
    server: Server, proxy: FlakyProxy, failures: list[Failure]
) -> None:
    proxy.down = True
    payback = client(server, failures, url=proxy.url)

    ids = _record(payback, 4)
    assert not payback.close(timeout=0.3)
    payback.record_call(customer="acme", model="gpt-4o", id="after-close")

    assert sorted(f.record.id for f in failures) == sorted([*ids, "after-close"])
    assert {f.code for f in failures} == {"closed"}


def test_a_full_queue_drops_new_records_without_raising(
    server: Server, proxy: FlakyProxy, failures: list[Failure]
) -> None:
    proxy.down = True
    payback = client(server, failures, url=proxy.url, max_queue=5)

    _record(payback, 8)

    assert [f.code for f in failures] == ["queue_full"] * 3
    assert payback.stats.recorded == 5
    proxy.down = False
    assert payback.flush(timeout=30)
    payback.close()
    assert UsageEvent.objects.count() == 5


def _child_records(answers: "multiprocessing.Queue[tuple[int, bool, int]]") -> None:
    """In the forked child: the inherited client, its queue emptied by the fork hook."""
    from tests.sdk.test_delivery import _FORKED  # the parent's client, as forked

    client_in_child = _FORKED[0]
    queued_before = client_in_child._outbox.pending
    for n in range(3):
        client_in_child.record_call(customer="globex", model="gpt-4o", id=f"child-{n}")
    flushed = client_in_child.flush(timeout=30)
    answers.put((queued_before, flushed, os.getpid()))


_FORKED: list[Payback] = []


@pytest.mark.timeout(120)
def test_a_forked_child_sends_its_own_records_and_not_its_parents(
    server: Server, failures: list[Failure]
) -> None:
    payback = client(server, failures, flush_interval=60)  # nothing leaves before the fork
    _FORKED[:] = [payback]
    _record(payback, 4, prefix="parent-")
    context = multiprocessing.get_context("fork")
    answers = context.Queue()

    child = context.Process(target=_child_records, args=(answers,))
    child.start()
    queued_before, flushed, child_pid = answers.get(timeout=60)
    child.join(60)
    assert payback.flush(timeout=30)
    payback.close()

    assert child.exitcode == 0 and child_pid != os.getpid()
    assert queued_before == 0  # the parent's four stayed with the parent
    assert flushed
    stored = sorted(UsageEvent.objects.values_list("event_id", flat=True))
    assert stored == [f"child-{n}" for n in range(3)] + [f"parent-{n}" for n in range(4)]


def test_the_backoff_of_a_sender_retrying_for_days_stays_a_number() -> None:
    from payback_client._delivery import Outbox

    outbox = Outbox(
        max_queue=1, batch_size=1, max_attempts=5, backoff=0.5, max_backoff=30.0,
        on_error=None, compress=False, spool=None,
    )  # fmt: skip

    assert 0 <= outbox.delay(5000) <= 30.0  # 2**5000 would not fit a float
    assert outbox.delay(5000, floor=60.0) == 60.0
