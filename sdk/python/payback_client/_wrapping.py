"""Recording the calls a provider's client makes, for the OpenAI and Anthropic wrappers.

Both libraries send every request of a resource through the resource's `_post` (set on
each resource instance, pointing at the client's `post`). A wrapper replaces it on the
resources that make model calls, so one mechanism sees `create`, `create(stream=True)`
and Anthropic's `messages.stream()` helper alike. The response is returned as the
library made it: the same object, type and content.

The usage is read by genai-prices' extractors (the catalog payback prices with), from
the response's `model` and `usage`, so the counts follow payback's conventions:
`input_tokens` is every prompt token (Anthropic's cache reads and writes added), and
cache reads and writes are given apart. Reasoning and audio tokens, where reported, go
in the event's properties.

A streamed call is recorded when its stream ends, or when it is dropped before the end
(with what it had reported by then, and `"stream": "abandoned"` in its properties). The
stream object stays the library's; only its internal iterator is wrapped.
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from payback_client._recorder import Recorder, default_recorder

logger = logging.getLogger("payback_client")

# The event's own fields; anything else genai-prices reports goes in its properties.
_FIELDS = {
    "input_tokens": "input_tokens",
    "output_tokens": "output_tokens",
    "cache_read_tokens": "cache_read_tokens",
    "cache_write_tokens": "cache_write_tokens",
}
_PROPERTIES = {"output_reasoning_tokens": "reasoning_tokens"}


def _dumped(value: Any) -> Any:
    return value.model_dump() if hasattr(value, "model_dump") else value


@dataclass
class Tally:
    """One call's model and usage as its response or its stream reports them."""

    recorder: Recorder
    provider: str
    flavor: str
    defaults: dict[str, Any]
    model: str | None = None
    usage: dict[str, Any] = field(default_factory=dict)
    hidden_usage_chunk: bool = False  # the caller did not ask for OpenAI's usage chunk
    complete: bool = False  # a stream's last report came (usage chunk, final event)
    done: bool = False

    def response(self, response: Any) -> None:
        if not hasattr(response, "usage"):  # a raw response (with_raw_response): not read
            return
        self.model = getattr(response, "model", None)
        self.usage = _dumped(response.usage) or {}
        self.finish(abandoned=False)

    def item(self, item: Any) -> bool:
        """Take what a streamed item reports; False when the caller must not see it."""
        kind = getattr(item, "type", None)
        if self.flavor == "chat":
            self.model = self.model or getattr(item, "model", None)
            if getattr(item, "usage", None) is not None:
                self.model, self.usage, self.complete = item.model, _dumped(item.usage), True
                if self.hidden_usage_chunk and not item.choices:
                    return False
        elif self.flavor == "responses":
            if kind in ("response.completed", "response.incomplete", "response.failed"):
                self.model, self.usage = item.response.model, _dumped(item.response.usage) or {}
                self.complete = True
        elif kind == "message_start":
            self.model, self.usage = item.message.model, _dumped(item.message.usage)
        elif kind == "message_delta" and item.usage is not None:
            # Cumulative counts; the input side only when the API repeats it.
            self.usage.update({k: v for k, v in _dumped(item.usage).items() if v is not None})
            self.complete = True
        return True

    def finish(self, *, abandoned: bool) -> None:
        if self.done:
            return
        self.done = True
        try:
            self._record(abandoned)
        except Exception:  # never into the caller's LLM call
            self.recorder.stats.errors += 1
            logger.exception("payback_client could not record a %s call", self.provider)

    def _record(self, abandoned: bool) -> None:
        counts: dict[str, Any] = {}
        if self.usage:
            from genai_prices import extract_usage

            extracted = extract_usage(
                {"model": self.model, "usage": self.usage},
                provider_id=self.provider,
                api_flavor=self.flavor,
            )
            counts = {k: v for k, v in vars(extracted.usage).items() if not k.startswith("_")}
        properties = dict(self.defaults.get("properties") or {})
        for key, name in _PROPERTIES.items():
            if counts.get(key):
                properties[name] = counts[key]
        if abandoned:
            properties["stream"] = "abandoned"
        fields = {k: v for k, v in self.defaults.items() if k != "properties"}
        self.recorder.record_call(
            provider=self.provider,
            model=self.model,
            **{name: counts.get(key) for key, name in _FIELDS.items()},
            properties=properties or None,
            **fields,
        )


def _observed(items: Iterator[Any], tally: Tally) -> Iterator[Any]:
    try:
        for item in items:
            if tally.item(item):
                yield item
    finally:  # the end, an error, or the stream dropped (its generator closed)
        tally.finish(abandoned=not tally.complete)


async def _observed_async(items: AsyncIterator[Any], tally: Tally) -> AsyncIterator[Any]:
    try:
        async for item in items:
            if tally.item(item):
                yield item
    finally:
        tally.finish(abandoned=not tally.complete)


def _observe_stream(stream: Any, tally: Tally, is_async: bool) -> None:
    """Wrap the library's stream's iterator (made on first use in both libraries)."""
    try:
        inner = stream._iterator
        stream._iterator = _observed_async(inner, tally) if is_async else _observed(inner, tally)
    except Exception:  # the library changed inside: the call goes on, unrecorded
        tally.recorder.stats.errors += 1
        logger.exception("payback_client cannot follow a %s stream", tally.provider)


def _wrapped_post(
    original: Callable[..., Any],
    path: str,
    tally_of: Callable[[], Tally],
    ask_for_usage: Callable[[str, dict[str, Any]], bool],
) -> Callable[..., Any]:
    """`original` (a resource's `_post`), recording the calls it makes to `path`."""
    is_async = inspect.iscoroutinefunction(original)

    def before(route: str, kwargs: dict[str, Any]) -> Tally | None:
        if route != path:
            return None
        tally = tally_of()
        if kwargs.get("stream"):
            tally.hidden_usage_chunk = ask_for_usage(tally.flavor, kwargs)
        return tally

    def after(tally: Tally | None, result: Any, kwargs: dict[str, Any]) -> Any:
        if tally is not None and kwargs.get("stream"):
            _observe_stream(result, tally, is_async)
        elif tally is not None:
            tally.response(result)
        return result

    if is_async:

        async def post(route: str, *args: Any, **kwargs: Any) -> Any:
            tally = before(route, kwargs)
            return after(tally, await original(route, *args, **kwargs), kwargs)

    else:

        def post(route: str, *args: Any, **kwargs: Any) -> Any:
            tally = before(route, kwargs)
            return after(tally, original(route, *args, **kwargs), kwargs)

    functools.update_wrapper(post, original)
    post._payback_wrapped = True  # type: ignore[attr-defined]
    return post


def wrap_resources(
    client: Any,
    *,
    provider: str,
    routes: dict[str, tuple[Callable[[Any], Any], str]],
    payback: Recorder | None,
    defaults: dict[str, Any],
    ask_for_usage: Callable[[str, dict[str, Any]], bool],
) -> Any:
    """Replace `_post` on each resource `routes` names (path -> (resource getter,
    genai-prices API flavor)). `ask_for_usage(flavor, kwargs)` may change a streamed
    request so that it reports usage, and says whether the caller must not see the
    extra item that brings it."""
    recorder = payback or default_recorder()
    for path, (resource_of, flavor) in routes.items():
        resource = resource_of(client)
        if getattr(resource._post, "_payback_wrapped", False):
            continue  # wrapped already: record each call once
        resource._post = _wrapped_post(
            resource._post,
            path,
            functools.partial(Tally, recorder, provider, flavor, defaults),
            ask_for_usage,
        )
    return client
