"""Recording with the SDK: what a backend writes in two lines arrives in payback as the
API would have stored it, attributed through scopes that each thread and asyncio task
keeps for itself."""

import asyncio
import threading
from decimal import Decimal
from typing import Any

import pytest
from payback_client import AsyncPayback, Failure, uuid7

from metering.models import UsageEvent
from outcomes.models import Outcome
from tests.sdk.conftest import Server, client


def _calls(**where: Any) -> list[UsageEvent]:
    return list(UsageEvent.objects.filter(**where).order_by("event_id"))


def test_a_scope_attributes_its_calls_and_succeeds_on_a_normal_exit(
    server: Server, failures: list[Failure]
) -> None:
    payback = client(server, failures)

    with payback.outcome("resolution", customer="acme", value="12.50", currency="USD") as o:
        first = payback.record_call(provider="openai", model="gpt-4o", input_tokens=812,
                                    output_tokens=95, feature="reply")  # fmt: skip
        second = payback.record_call(provider="anthropic", model="claude-sonnet-4-5",
                                     input_tokens=1200, cache_read_tokens=1000,
                                     output_tokens=40, cost=Decimal("0.0021"))  # fmt: skip
    assert payback.flush(timeout=30)
    payback.close()

    outcome = Outcome.objects.get(external_id=o.id)
    assert (outcome.customer.external_id, outcome.type, outcome.status) == (
        "acme", "resolution", "succeeded",
    )  # fmt: skip
    assert outcome.value == Decimal("12.50")
    calls = {c.event_id: c for c in _calls(outcome_ref=o.id)}
    assert set(calls) == {first, second}
    assert calls[first].customer.external_id == "acme"
    assert (calls[first].input_tokens, calls[first].output_tokens) == (812, 95)
    assert calls[first].feature == "reply"
    assert calls[second].cost == Decimal("0.0021")
    assert calls[second].cache_read_tokens == 1000
    assert failures == []
    assert payback.stats.delivered == 3


def test_an_exception_fails_the_outcome_and_goes_on(
    server: Server, failures: list[Failure]
) -> None:
    payback = client(server, failures)

    with pytest.raises(TimeoutError), payback.outcome("resolution", customer="acme") as o:
        payback.record_call(model="gpt-4o", input_tokens=10, output_tokens=1)
        raise TimeoutError("the model did not answer")
    payback.close()

    assert Outcome.objects.get(external_id=o.id).status == "failed"
    assert [c.outcome_ref for c in _calls()] == [o.id]  # its calls still cost


def test_the_block_says_how_it_ended_and_a_pending_outcome_succeeds_later(
    server: Server, failures: list[Failure]
) -> None:
    payback = client(server, failures)

    with payback.outcome("resolution", customer="acme") as refused:
        refused.fail()  # no exception, but no resolution either
    with payback.outcome("resolution", customer="acme") as waiting:
        waiting.leave_pending()  # the end user confirms tomorrow
    assert payback.flush(timeout=30)
    assert Outcome.objects.get(external_id=waiting.id).status == "pending"
    payback.succeed(waiting.id, value="30", currency="USD")
    payback.close()

    assert Outcome.objects.get(external_id=refused.id).status == "failed"
    succeeded = Outcome.objects.get(external_id=waiting.id)
    assert (succeeded.status, succeeded.value) == ("succeeded", Decimal("30"))


def test_record_outcome_fail_and_reverse_mirror_the_api(
    server: Server, failures: list[Failure]
) -> None:
    payback = client(server, failures)

    kept = payback.record_outcome(type="resolution", customer="acme", status="pending")
    lost = payback.record_outcome(type="resolution", customer="acme", status="pending")
    payback.succeed(kept)
    payback.fail(lost)
    payback.reverse(kept)  # sent after the success queued before it
    payback.close()

    assert Outcome.objects.get(external_id=kept).status == "reversed"
    assert Outcome.objects.get(external_id=lost).status == "failed"
    assert failures == []


def test_customer_feature_and_user_scopes_are_defaults_an_argument_overrides(
    server: Server, failures: list[Failure]
) -> None:
    payback = client(server, failures)

    with payback.customer("acme"), payback.feature("summarise"), payback.user("u-7"):
        plain = payback.record_call(model="gpt-4o", input_tokens=1, output_tokens=1)
        other = payback.record_call(customer="globex", feature="search", model="gpt-4o",
                                    input_tokens=1, output_tokens=1)  # fmt: skip
    payback.close()

    stored = {c.event_id: c for c in _calls()}
    assert (stored[plain].customer.external_id, stored[plain].feature) == ("acme", "summarise")
    assert stored[plain].end_user == "u-7"
    assert (stored[other].customer.external_id, stored[other].feature) == ("globex", "search")


def test_threads_keep_their_own_scopes(server: Server, failures: list[Failure]) -> None:
    payback = client(server, failures)
    ids: dict[str, str] = {}
    both_inside = threading.Barrier(2)

    def work(customer: str) -> None:
        with payback.outcome("resolution", customer=customer) as o:
            ids[customer] = o.id
            both_inside.wait(timeout=10)  # the two scopes are open at the same time
            for _ in range(5):
                payback.record_call(model="gpt-4o", input_tokens=1, output_tokens=1)

    threads = [threading.Thread(target=work, args=(c,)) for c in ("acme", "globex")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    payback.close()

    for customer, outcome_id in ids.items():
        calls = _calls(outcome_ref=outcome_id)
        assert len(calls) == 5
        assert {c.customer.external_id for c in calls} == {customer}


def test_the_asyncio_client_has_the_same_surface_and_tasks_keep_their_scopes(
    server: Server, failures: list[Failure]
) -> None:
    async def main() -> dict[str, str]:
        ids: dict[str, str] = {}
        async with AsyncPayback(
            api_key=server.key, base_url=server.url, flush_interval=0.05, on_error=failures.append
        ) as payback:

            async def work(customer: str) -> None:
                async with payback.outcome("resolution", customer=customer) as o:
                    ids[customer] = o.id
                    for _ in range(5):
                        payback.record_call(model="gpt-4o", input_tokens=1, output_tokens=1)
                        await asyncio.sleep(0)  # the other task runs in between

            await asyncio.gather(work("acme"), work("globex"))
            assert await payback.flush(timeout=30)
        return ids

    ids = asyncio.run(main())

    for customer, outcome_id in ids.items():
        assert Outcome.objects.get(external_id=outcome_id).status == "succeeded"
        assert {c.customer.external_id for c in _calls(outcome_ref=outcome_id)} == {customer}
    assert failures == []


def test_misuse_raises_and_nothing_is_queued(server: Server, failures: list[Failure]) -> None:
    payback = client(server, failures)

    with pytest.raises(TypeError, match="float"):
        payback.record_call(customer="acme", model="gpt-4o", cost=0.002)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="customer"):
        payback.record_call(model="gpt-4o")
    with pytest.raises(ValueError, match="customer"):
        payback.outcome("resolution").__enter__()
    payback.close()

    assert payback.stats.recorded == 0
    assert not UsageEvent.objects.exists()


def test_ids_are_time_ordered_uuid7s() -> None:
    ids = [uuid7() for _ in range(10_000)]

    assert ids == sorted(ids)  # made in order, sorted in order (the counter within a ms)
    assert len(set(ids)) == len(ids)
    assert {i[14] for i in ids} == {"7"}  # the version nibble
    assert {i[19] for i in ids} <= set("89ab")  # the RFC variant
