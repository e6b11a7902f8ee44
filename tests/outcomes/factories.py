from itertools import count
from typing import Any

from metering.models import Customer

_ids = count(1)


def outcome_payload(customer: Customer | str, **fields: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "id": f"outcome-{next(_ids)}",
        "customer": customer if isinstance(customer, str) else customer.external_id,
        "type": "resolution",
    }
    payload.update(fields)
    return payload
