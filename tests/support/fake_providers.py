"""A local HTTP server that answers as OpenAI and Anthropic do, in their documented
response shapes, so the real `openai` and `anthropic` libraries can be pointed at it
(`base_url`): chat completions and responses, and messages, as JSON or as server-sent
events. It keeps the bodies it was sent."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

CHAT_MODEL = "gpt-4o-2024-08-06"
RESPONSES_MODEL = "o3-2025-04-16"
CLAUDE_MODEL = "claude-sonnet-4-6"
WORDS = ["Your", " refund", " is", " on", " its", " way", "."]

CHAT_USAGE = {
    "prompt_tokens": 1200, "completion_tokens": 30, "total_tokens": 1230,
    "prompt_tokens_details": {"cached_tokens": 1024, "audio_tokens": 0},
    "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                                  "accepted_prediction_tokens": 0,
                                  "rejected_prediction_tokens": 0},
}  # fmt: skip
RESPONSES_USAGE = {
    "input_tokens": 500, "input_tokens_details": {"cached_tokens": 0},
    "output_tokens": 700, "output_tokens_details": {"reasoning_tokens": 640},
    "total_tokens": 1200,
}  # fmt: skip
CLAUDE_USAGE = {
    "input_tokens": 200, "cache_creation_input_tokens": 500, "cache_read_input_tokens": 1000,
    "output_tokens": 80,
}  # fmt: skip


def _chat() -> dict[str, Any]:
    return {
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1_764_000_000,
        "model": CHAT_MODEL, "system_fingerprint": "fp_1",
        "choices": [{"index": 0, "logprobs": None, "finish_reason": "stop",
                     "message": {"role": "assistant", "content": "".join(WORDS),
                                 "refusal": None}}],
        "usage": CHAT_USAGE,
    }  # fmt: skip


def _chat_chunks(include_usage: bool) -> Iterator[dict[str, Any]]:
    base = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1_764_000_000,
            "model": CHAT_MODEL, "system_fingerprint": "fp_1"}  # fmt: skip
    extra = {"usage": None} if include_usage else {}
    yield {**base, **extra, "choices": [{"index": 0, "delta": {"role": "assistant",
           "content": ""}, "logprobs": None, "finish_reason": None}]}  # fmt: skip
    for word in WORDS:
        yield {**base, **extra, "choices": [{"index": 0, "delta": {"content": word},
               "logprobs": None, "finish_reason": None}]}  # fmt: skip
    yield {**base, **extra, "choices": [{"index": 0, "delta": {}, "logprobs": None,
           "finish_reason": "stop"}]}  # fmt: skip
    if include_usage:
        yield {**base, "choices": [], "usage": CHAT_USAGE}


def _response(status: str, usage: dict[str, Any] | None) -> dict[str, Any]:
    return {
        "id": "resp_1", "object": "response", "created_at": 1_764_000_000, "status": status,
        "model": RESPONSES_MODEL, "parallel_tool_calls": True, "tool_choice": "auto",
        "tools": [], "error": None, "incomplete_details": None, "instructions": None,
        "metadata": {}, "temperature": 1.0, "top_p": 1.0,
        "output": [] if usage is None else [
            {"type": "message", "id": "msg_1", "status": "completed", "role": "assistant",
             "content": [{"type": "output_text", "text": "".join(WORDS), "annotations": []}]}
        ],
        "usage": usage,
    }  # fmt: skip


def _response_events() -> Iterator[tuple[str, dict[str, Any]]]:
    yield "response.created", {"type": "response.created", "sequence_number": 0,
                               "response": _response("in_progress", None)}  # fmt: skip
    for number, word in enumerate(WORDS, start=1):
        yield "response.output_text.delta", {
            "type": "response.output_text.delta", "sequence_number": number,
            "item_id": "msg_1", "output_index": 0, "content_index": 0, "delta": word,
        }  # fmt: skip
    yield "response.completed", {"type": "response.completed", "sequence_number": 99,
                                 "response": _response("completed", RESPONSES_USAGE)}  # fmt: skip


def _message() -> dict[str, Any]:
    return {
        "id": "msg_1", "type": "message", "role": "assistant", "model": CLAUDE_MODEL,
        "content": [{"type": "text", "text": "".join(WORDS)}],
        "stop_reason": "end_turn", "stop_sequence": None, "usage": CLAUDE_USAGE,
    }  # fmt: skip


def _message_events(words: list[str]) -> Iterator[tuple[str, dict[str, Any]]]:
    start = {**_message(), "content": [], "stop_reason": None,
             "usage": {**CLAUDE_USAGE, "output_tokens": 1}}  # fmt: skip
    yield "message_start", {"type": "message_start", "message": start}
    yield "content_block_start", {"type": "content_block_start", "index": 0,
                                  "content_block": {"type": "text", "text": ""}}  # fmt: skip
    yield "ping", {"type": "ping"}
    for word in words:
        yield "content_block_delta", {"type": "content_block_delta", "index": 0,
                                      "delta": {"type": "text_delta", "text": word}}  # fmt: skip
    yield "content_block_stop", {"type": "content_block_stop", "index": 0}
    yield "message_delta", {"type": "message_delta",
                            "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                            "usage": {"output_tokens": CLAUDE_USAGE["output_tokens"]}}  # fmt: skip
    yield "message_stop", {"type": "message_stop"}


@dataclass
class FakeProviders:
    url: str = ""
    requests: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    # Words a streamed message carries: many, for a test that drops the stream early.
    stream_words: list[str] = field(default_factory=lambda: list(WORDS))


def start_fake_providers() -> tuple[FakeProviders, ThreadingHTTPServer]:
    fake = FakeProviders()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
            fake.requests.append((self.path, body))
            stream = bool(body.get("stream"))
            if self.path == "/v1/chat/completions":
                if not stream:
                    return self._json(_chat())
                include = bool((body.get("stream_options") or {}).get("include_usage"))
                return self._events((None, chunk) for chunk in _chat_chunks(include))
            if self.path == "/v1/responses":
                if not stream:
                    return self._json(_response("completed", RESPONSES_USAGE))
                return self._events(_response_events())
            if self.path == "/v1/messages":
                if not stream:
                    return self._json(_message())
                return self._events(_message_events(fake.stream_words), done=False)
            self.send_error(404)

        def _json(self, payload: dict[str, Any]) -> None:
            data = json.dumps(payload).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _events(
            self, events: Iterator[tuple[str | None, dict[str, Any]]], done: bool = True
        ) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            try:
                for name, data in events:
                    head = f"event: {name}\n" if name else ""
                    self._chunk(f"{head}data: {json.dumps(data)}\n\n".encode())
                if done:
                    self._chunk(b"data: [DONE]\n\n")
                self._chunk(b"")
            except (BrokenPipeError, ConnectionResetError):  # the client dropped it
                self.close_connection = True

        def _chunk(self, data: bytes) -> None:
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return fake, server
