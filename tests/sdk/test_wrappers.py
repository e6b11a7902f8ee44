"""The OpenAI and Anthropic wrappers, with the real client libraries pointed at a local
server that answers in the providers' documented shapes: each call is recorded with the
provider's model and token counts, sync and async, streamed or not, and the caller gets
exactly what an unwrapped client gets."""

import asyncio
import gc
from collections.abc import Iterator
from typing import Any

import anthropic
import openai
import pytest
from payback_client import Failure, Payback
from payback_client.anthropic import wrap as wrap_anthropic
from payback_client.openai import wrap as wrap_openai

from metering.models import UsageEvent
from tests.sdk.conftest import Server, client
from tests.support.fake_providers import (
    CHAT_MODEL,
    CLAUDE_MODEL,
    RESPONSES_MODEL,
    FakeProviders,
    start_fake_providers,
)

CHAT = {"model": "gpt-4o", "messages": [{"role": "user", "content": "Where is my refund?"}]}
CLAUDE = {"model": "claude-sonnet-4-6", "max_tokens": 100,
          "messages": [{"role": "user", "content": "Where is my refund?"}]}  # fmt: skip


@pytest.fixture
def providers() -> Iterator[FakeProviders]:
    fake, server = start_fake_providers()
    yield fake
    server.shutdown()
    server.server_close()


@pytest.fixture
def payback(server: Server, failures: list[Failure]) -> Iterator[Payback]:
    made = client(server, failures)
    yield made
    made.close()


def _openai(providers: FakeProviders, kind: type = openai.OpenAI) -> Any:
    return kind(base_url=f"{providers.url}/v1", api_key="sk-test", max_retries=0)


def _anthropic(providers: FakeProviders, kind: type = anthropic.Anthropic) -> Any:
    return kind(base_url=providers.url, api_key="sk-ant-test", max_retries=0)


def _only_call(payback: Payback) -> UsageEvent:
    assert payback.flush(timeout=30)
    (call,) = UsageEvent.objects.all()
    return call


def _tokens(call: UsageEvent) -> tuple[int, int, int, int]:
    return (call.input_tokens, call.output_tokens, call.cache_read_tokens,
            call.cache_write_tokens)  # fmt: skip


def test_a_chat_completion_is_recorded_and_returned_unchanged(
    payback: Payback, providers: FakeProviders
) -> None:
    wrapped = wrap_openai(_openai(providers), feature="support-bot")

    with payback.outcome("resolution", customer="acme") as outcome:
        answer = wrapped.chat.completions.create(**CHAT)
    plain = _openai(providers).chat.completions.create(**CHAT)

    assert type(answer) is type(plain)
    assert answer.model_dump() == plain.model_dump()
    call = _only_call(payback)
    assert (call.provider, call.model) == ("openai", CHAT_MODEL)
    assert _tokens(call) == (1200, 30, 1024, 0)  # the cached prompt tokens apart
    assert (call.customer.external_id, call.outcome_ref) == ("acme", outcome.id)
    assert call.feature == "support-bot"
    assert call.cost is not None  # priced by payback from the catalog


def test_a_streamed_chat_completion_is_recorded_at_its_end_and_streams_unchanged(
    payback: Payback, providers: FakeProviders
) -> None:
    wrapped = wrap_openai(_openai(providers))

    with payback.customer("acme"):
        stream = wrapped.chat.completions.create(**CHAT, stream=True)
        chunks = [chunk.model_dump() for chunk in stream]
    plain = [
        c.model_dump() for c in _openai(providers).chat.completions.create(**CHAT, stream=True)
    ]

    # The wrapper asked for the usage chunk; the caller, who did not, never sees it.
    assert providers.requests[0][1]["stream_options"] == {"include_usage": True}
    assert "stream_options" not in providers.requests[1][1]
    assert isinstance(stream, openai.Stream)
    assert [c["choices"] for c in chunks] == [c["choices"] for c in plain]
    assert _tokens(_only_call(payback)) == (1200, 30, 1024, 0)


def test_a_caller_that_asked_for_the_usage_chunk_still_gets_it(
    payback: Payback, providers: FakeProviders
) -> None:
    wrapped = wrap_openai(_openai(providers))

    with payback.customer("acme"):
        chunks = list(wrapped.chat.completions.create(
            **CHAT, stream=True, stream_options={"include_usage": True}
        ))  # fmt: skip

    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert _tokens(_only_call(payback))[:2] == (1200, 30)


def test_responses_record_reasoning_tokens_streamed_or_not(
    payback: Payback, providers: FakeProviders
) -> None:
    wrapped = wrap_openai(_openai(providers))

    with payback.customer("acme"):
        wrapped.responses.create(model="o3", input="Where is my refund?")
        events = list(wrapped.responses.create(model="o3", input="Again?", stream=True))

    assert events[-1].type == "response.completed"
    assert payback.flush(timeout=30)
    calls = list(UsageEvent.objects.all())
    assert len(calls) == 2
    for call in calls:
        assert (call.model, _tokens(call)) == (RESPONSES_MODEL, (500, 700, 0, 0))
        assert call.properties == {"reasoning_tokens": 640}


def test_an_anthropic_message_counts_cache_reads_and_writes_as_payback_does(
    payback: Payback, providers: FakeProviders
) -> None:
    wrapped = wrap_anthropic(_anthropic(providers))

    with payback.customer("acme"):
        answer = wrapped.messages.create(**CLAUDE)
    plain = _anthropic(providers).messages.create(**CLAUDE)

    assert answer.model_dump() == plain.model_dump()
    call = _only_call(payback)
    assert (call.provider, call.model) == ("anthropic", CLAUDE_MODEL)
    # 200 uncached + 1,000 read + 500 written: every prompt token is an input token.
    assert _tokens(call) == (1700, 80, 1000, 500)


def test_anthropic_streams_are_recorded_through_create_and_the_stream_helper(
    payback: Payback, providers: FakeProviders
) -> None:
    wrapped = wrap_anthropic(_anthropic(providers))

    with payback.customer("acme"):
        events = list(wrapped.messages.create(**CLAUDE, stream=True))
        with wrapped.messages.stream(**CLAUDE) as stream:
            text = "".join(stream.text_stream)

    assert events[-1].type == "message_stop"
    assert text == "Your refund is on its way."
    assert payback.flush(timeout=30)
    calls = list(UsageEvent.objects.all())
    assert [_tokens(c) for c in calls] == [(1700, 80, 1000, 500)] * 2
    assert all(c.properties == {} for c in calls)


def test_a_stream_dropped_early_is_recorded_as_abandoned_with_what_it_reported(
    payback: Payback, providers: FakeProviders
) -> None:
    providers.stream_words = ["word "] * 500
    wrapped = wrap_anthropic(_anthropic(providers))

    with payback.customer("acme"):
        stream = wrapped.messages.create(**CLAUDE, stream=True)
        first = [next(stream), next(stream)]
        del stream
        gc.collect()

    assert first[0].type == "message_start"
    call = _only_call(payback)
    assert call.properties == {"stream": "abandoned"}
    assert call.input_tokens == 1700  # message_start said so; the output count never came
    assert call.output_tokens == 1


def test_async_clients_are_recorded_streamed_or_not(
    server: Server, failures: list[Failure], providers: FakeProviders
) -> None:
    async def main() -> None:
        from payback_client import AsyncPayback

        options = {"flush_interval": 0.05, "on_error": failures.append}
        async with AsyncPayback(api_key=server.key, base_url=server.url, **options) as payback:
            chat = wrap_openai(_openai(providers, openai.AsyncOpenAI), payback=payback)
            claude = wrap_anthropic(_anthropic(providers, anthropic.AsyncAnthropic),
                                    payback=payback)  # fmt: skip
            with payback.customer("acme"):
                await chat.chat.completions.create(**CHAT)
                async for _ in await chat.chat.completions.create(**CHAT, stream=True):
                    pass
                await claude.messages.create(**CLAUDE)
                async for _ in await claude.messages.create(**CLAUDE, stream=True):
                    pass
            assert await payback.flush(timeout=30)

    asyncio.run(main())

    calls = sorted((c.model, _tokens(c)) for c in UsageEvent.objects.all())
    assert calls == sorted([(CHAT_MODEL, (1200, 30, 1024, 0))] * 2 +
                           [(CLAUDE_MODEL, (1700, 80, 1000, 500))] * 2)  # fmt: skip
    assert failures == []


def test_wrapping_twice_records_once_and_a_provider_error_records_nothing(
    payback: Payback, providers: FakeProviders
) -> None:
    wrapped = wrap_openai(wrap_openai(_openai(providers)))
    broken = wrap_openai(openai.OpenAI(base_url=f"{providers.url}/nowhere", api_key="x",
                                       max_retries=0))  # fmt: skip

    with payback.customer("acme"):
        wrapped.chat.completions.create(**CHAT)
        with pytest.raises(openai.NotFoundError):
            broken.chat.completions.create(**CHAT)

    assert _only_call(payback).model == CHAT_MODEL


def test_a_call_outside_any_customer_scope_is_logged_never_raised(
    payback: Payback, providers: FakeProviders, caplog: pytest.LogCaptureFixture
) -> None:
    wrapped = wrap_openai(_openai(providers))

    answer = wrapped.chat.completions.create(**CHAT)  # no customer anywhere

    assert answer.choices[0].message.content == "Your refund is on its way."
    assert payback.stats.errors == 1
    assert "could not record a openai call" in caplog.text
