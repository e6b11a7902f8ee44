"""The SDK (sdk/python, package payback_client) against payback itself: the project's
server on a live port, with a flaky proxy in front when a test needs the network to fail."""

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from payback_client import Failure, Payback

from tests.metering.factories import customer_create
from tests.support.flaky_proxy import FlakyProxy, start_flaky_proxy


@dataclass
class Server:
    url: str
    key: str


@pytest.fixture
def server(live_server: Any, api_key: str) -> Server:
    customer_create(external_id="acme")
    customer_create(external_id="globex")
    return Server(url=live_server.url, key=api_key)


@pytest.fixture
def proxy(server: Server) -> Iterator[FlakyProxy]:
    found, http_server = start_flaky_proxy(server.url)
    yield found
    found.stopped.set()
    http_server.shutdown()
    http_server.server_close()


@pytest.fixture
def failures() -> list[Failure]:
    return []


_MADE: list[Payback] = []


@pytest.fixture(autouse=True)
def _clients_closed() -> Iterator[None]:
    """Every client a test made is closed after it: none goes on retrying against a proxy
    that is gone, for the rest of the suite."""
    yield
    while _MADE:
        _MADE.pop().close(timeout=0)


def client(
    server: Server, failures: list[Failure], url: str | None = None, **options: Any
) -> Payback:
    """A client that sends soon and retries fast (the tests' network fails on purpose)."""
    made = Payback(
        api_key=server.key,
        base_url=url or server.url,
        flush_interval=options.pop("flush_interval", 0.05),
        backoff=options.pop("backoff", 0.01),
        max_backoff=options.pop("max_backoff", 0.05),
        on_error=failures.append,
        **options,
    )
    _MADE.append(made)
    return made
