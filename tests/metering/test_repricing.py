"""Unpriced events get their cost when an operator adds a price: by a real Celery worker."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from metering.models import CostSource, ModelPriceOverride, UsageEvent
from metering.services import event_partitions_ensure, events_price_unpriced, price_override_save
from metering.tasks import price_unpriced_events_sweep
from tests.metering.factories import customer_create, event_payload, override_create
from tests.support.polling import wait_for


def post_unpriced(client, customer, **fields):
    body = event_payload(
        customer,
        provider="self-hosted",
        model="llama-3-8b-distilled",
        input_tokens=2_000_000,
        output_tokens=1_000_000,
        **fields,
    )
    assert client.post("/v1/events", body, format="json").json()["accepted"] == 1
    return body["id"]


def test_unpriced_event_is_priced_by_the_worker_after_its_override_is_added(
    celery_worker, client_with_key
):
    customer = customer_create()
    event_id = post_unpriced(client_with_key, customer)
    assert UsageEvent.objects.get(event_id=event_id).cost is None

    price_override_save(
        override=ModelPriceOverride(
            provider="self-hosted",
            model="llama-3-8b-distilled",
            effective_from=timezone.now() - timedelta(days=30),
            input_per_mtok=Decimal("0.05"),
            output_per_mtok=Decimal("0.08"),
            note="1 x L4 GPU at $0.80/h, 30M tokens/h",
        )
    )

    assert wait_for(
        lambda: UsageEvent.objects.get(event_id=event_id).cost_source == CostSource.OVERRIDE
    ), "the worker did not price the event"
    event = UsageEvent.objects.get(event_id=event_id)
    assert event.cost == Decimal("0.18")  # 2 x $0.05 + 1 x $0.08
    assert event.price_version.startswith("override:")


@pytest.mark.django_db
def test_events_before_the_override_stay_unpriced(client_with_key):
    customer = customer_create()
    old_id = post_unpriced(
        client_with_key, customer, timestamp=(timezone.now() - timedelta(days=10)).isoformat()
    )
    new_id = post_unpriced(client_with_key, customer)
    override_create(
        effective_from=timezone.now() - timedelta(days=1), input_per_mtok="1", output_per_mtok="1"
    )

    assert events_price_unpriced(provider="self-hosted", model="llama-3-8b-distilled") == 1

    assert UsageEvent.objects.get(event_id=old_id).cost is None
    assert UsageEvent.objects.get(event_id=new_id).cost == Decimal("3")


@pytest.mark.django_db
def test_pricing_twice_changes_nothing_the_second_time(client_with_key):
    customer = customer_create()
    post_unpriced(client_with_key, customer)
    override_create(
        effective_from=datetime(2020, 1, 1, tzinfo=UTC), input_per_mtok="1", output_per_mtok="1"
    )

    assert events_price_unpriced(provider="self-hosted", model="llama-3-8b-distilled") == 1
    assert events_price_unpriced(provider="self-hosted", model="llama-3-8b-distilled") == 0


@pytest.mark.django_db
def test_sweep_prices_what_a_lost_task_left_unpriced(client_with_key):
    customer = customer_create()
    event_id = post_unpriced(client_with_key, customer)
    # Created without the service: as if the enqueued task had been lost.
    override_create(
        effective_from=datetime(2020, 1, 1, tzinfo=UTC), input_per_mtok="1", output_per_mtok="1"
    )

    assert price_unpriced_events_sweep() == 1
    assert UsageEvent.objects.get(event_id=event_id).cost == Decimal("3")


@pytest.mark.django_db
def test_repricing_walks_past_a_full_batch_of_unpriceable_events(client_with_key):
    customer = customer_create()
    stamp = (timezone.now() - timedelta(days=10)).isoformat()
    for _ in range(3):
        post_unpriced(client_with_key, customer, timestamp=stamp)
    priceable = post_unpriced(client_with_key, customer)
    override_create(
        effective_from=timezone.now() - timedelta(days=1), input_per_mtok="1", output_per_mtok="1"
    )

    priced = events_price_unpriced(
        provider="self-hosted", model="llama-3-8b-distilled", batch_size=2
    )

    assert priced == 1
    assert UsageEvent.objects.get(event_id=priceable).cost == Decimal("3")


@pytest.mark.django_db
def test_repricing_in_batches_across_partitions_prices_each_call_at_its_time(client_with_key):
    """Set-based repricing (a SELECT and one UPDATE per batch) over two monthly
    partitions and two prices: each call gets the price valid at its timestamp, once,
    with the watermark of the transaction that priced it; another model is untouched."""
    now = timezone.now()
    event_partitions_ensure(now=now - timedelta(days=31), ahead=1)
    customer = customer_create()
    ages = [
        timedelta(days=days, minutes=minutes) for days in (1, 10, 20, 33) for minutes in (0, 1, 2)
    ]
    ids = {
        age: post_unpriced(client_with_key, customer, timestamp=(now - age).isoformat())
        for age in ages
    }
    other_model = event_payload(customer, provider="self-hosted", model="mistral-7b-distilled")
    assert client_with_key.post("/v1/events", other_model, format="json").json()["accepted"] == 1
    old = override_create(
        effective_from=now - timedelta(days=30), input_per_mtok="1", output_per_mtok="1"
    )
    new = override_create(
        effective_from=now - timedelta(days=15), input_per_mtok="2", output_per_mtok="2"
    )

    priced = events_price_unpriced(
        provider="self-hosted", model="llama-3-8b-distilled", batch_size=4
    )

    assert priced == 9  # the three calls from before the first price stay unpriced
    for age, event_id in ids.items():
        event = UsageEvent.objects.get(event_id=event_id)
        if age > timedelta(days=30):
            assert (event.cost, event.cost_source, event.priced_xid) == (None, "unpriced", None)
        else:
            override = new if age < timedelta(days=15) else old
            rate = override.input_per_mtok
            assert event.cost == 3 * rate  # 2M input and 1M output tokens at `rate` per M
            assert (event.cost_source, event.price_version) == (
                "override",
                f"override:{override.pk}",
            )
            assert event.priced_xid is not None
    assert UsageEvent.objects.get(event_id=other_model["id"]).cost_source == "unpriced"
    assert events_price_unpriced(provider="self-hosted", model="llama-3-8b-distilled") == 0
