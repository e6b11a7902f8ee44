"""Writes of the metering app, one module per entity; import them from here."""

from metering.services.customers import customer_upsert
from metering.services.ingest import events_ingest
from metering.services.partitions import event_partition_detach, event_partitions_ensure
from metering.services.prices import (
    events_price_unpriced,
    price_override_create,
    price_override_save,
)

__all__ = [
    "customer_upsert",
    "event_partition_detach",
    "event_partitions_ensure",
    "events_ingest",
    "events_price_unpriced",
    "price_override_create",
    "price_override_save",
]
