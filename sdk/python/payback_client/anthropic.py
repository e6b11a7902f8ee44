"""Record every call an Anthropic client makes:

    from anthropic import Anthropic
    from payback_client.anthropic import wrap

    client = wrap(Anthropic())  # then use it as before, inside payback's scopes

Messages, sync (`Anthropic`) and async (`AsyncAnthropic`): `messages.create`, with
`stream=True` too, and the `messages.stream()` helper. Cache reads and writes are
counted in `input_tokens` and given apart, as payback prices them.
"""

from __future__ import annotations

from typing import Any, TypeVar

from payback_client._recorder import Recorder
from payback_client._wrapping import wrap_resources

Client = TypeVar("Client")


def wrap(client: Client, *, payback: Recorder | None = None, **defaults: Any) -> Client:
    """`client` (an `Anthropic` or `AsyncAnthropic`), recording each model call to
    `payback` (the client made last, by default). `defaults` are record_call's fields
    for every call; scopes and their customer apply as usual."""
    return wrap_resources(
        client,
        provider="anthropic",
        routes={"/v1/messages": (lambda c: c.messages, "default")},
        payback=payback,
        defaults=defaults,
        ask_for_usage=lambda flavor, kwargs: False,  # every stream reports its usage
    )
