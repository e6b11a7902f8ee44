"""payback's Python client: record every LLM call and outcome from a product backend.

    from payback_client import Payback

    payback = Payback(api_key="…", base_url="https://billing.example.com")
    with payback.outcome("resolution", customer="acme"):
        payback.record_call(provider="openai", model="gpt-4o", input_tokens=812,
                            output_tokens=95)

See README.md beside this package for delivery, scopes, asyncio and the wrappers.
"""

from payback_client._async import AsyncPayback
from payback_client._authorizing import (
    Authorization,
    PaybackError,
    PaybackUnavailable,
    Refused,
    ReservationScope,
)
from payback_client._delivery import Failure, Stats
from payback_client._ids import uuid7
from payback_client._recorder import OutcomeScope
from payback_client._sync import Payback

__all__ = [
    "AsyncPayback",
    "Authorization",
    "Failure",
    "OutcomeScope",
    "Payback",
    "PaybackError",
    "PaybackUnavailable",
    "Refused",
    "ReservationScope",
    "Stats",
    "uuid7",
]
