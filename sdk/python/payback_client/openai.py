"""Record every call an OpenAI client makes:

    from openai import OpenAI
    from payback_client.openai import wrap

    client = wrap(OpenAI())  # then use it as before, inside payback's scopes

Chat completions and responses, sync (`OpenAI`) and async (`AsyncOpenAI`), streamed or
not. A streamed chat completion reports its usage only when asked
(`stream_options={"include_usage": True}`): the wrapper asks, and keeps the extra
usage-only chunk from a caller that did not ask for it.
"""

from __future__ import annotations

from typing import Any, TypeVar

from payback_client._recorder import Recorder
from payback_client._wrapping import wrap_resources

Client = TypeVar("Client")


def _ask_for_usage(flavor: str, kwargs: dict[str, Any]) -> bool:
    body = kwargs.get("body")
    if flavor != "chat" or not isinstance(body, dict):
        return False
    options = dict(body.get("stream_options") or {})
    if options.get("include_usage"):
        return False  # the caller asked: it sees the usage chunk, as it expects
    kwargs["body"] = {**body, "stream_options": {**options, "include_usage": True}}
    return True


def wrap(client: Client, *, payback: Recorder | None = None, **defaults: Any) -> Client:
    """`client` (an `OpenAI` or `AsyncOpenAI`), recording each model call to `payback`
    (the client made last, by default). `defaults` are record_call's fields for every
    call (e.g. `feature="support-bot"`); scopes and their customer apply as usual."""
    return wrap_resources(
        client,
        provider="openai",
        routes={
            "/chat/completions": (lambda c: c.chat.completions, "chat"),
            "/responses": (lambda c: c.responses, "responses"),
        },
        payback=payback,
        defaults=defaults,
        ask_for_usage=_ask_for_usage,
    )
