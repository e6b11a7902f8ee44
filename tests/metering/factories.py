from datetime import datetime
from decimal import Decimal
from itertools import count
from typing import Any

from metering.models import Customer, ModelPriceOverride
from metering.services import customer_upsert

_ids = count(1)


def customer_create(**fields: Any) -> Customer:
    fields.setdefault("external_id", f"customer-{next(_ids)}")
    customer, _ = customer_upsert(**fields)
    return customer


def event_payload(customer: Customer | str, **fields: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "id": f"evt-{next(_ids)}",
        "customer": customer if isinstance(customer, str) else customer.external_id,
        "provider": "openai",
        "model": "gpt-4o",
        "input_tokens": 1000,
        "output_tokens": 200,
    }
    payload.update(fields)
    return payload


def override_create(
    *,
    provider: str = "self-hosted",
    model: str = "llama-3-8b-distilled",
    effective_from: datetime,
    input_per_mtok: str = "0.10",
    output_per_mtok: str = "0.20",
    **fields: Any,
) -> ModelPriceOverride:
    return ModelPriceOverride.objects.create(
        provider=provider,
        model=model,
        effective_from=effective_from,
        input_per_mtok=Decimal(input_per_mtok),
        output_per_mtok=Decimal(output_per_mtok),
        **fields,
    )


# A price override as POST /v1/price-overrides takes it (one price a number, one a string).
OVERRIDE = {
    "provider": "self-hosted",
    "model": "llama-3-8b-distilled",
    "effective_from": "2026-10-01T00:00:00Z",
    "input_per_mtok": "0.10",
    "output_per_mtok": 0.2,
}
