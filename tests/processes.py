"""Helpers for tests that run payback's own processes (workers, the API server): the
test database as their DATABASE_URL, and waiting for something they do."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import TypeVar
from urllib.parse import urlsplit, urlunsplit

from django.db import connection

T = TypeVar("T")


def database_url() -> str:
    """The test database as a DATABASE_URL, for other processes: the session's
    DATABASE_URL (a server, or the embedded one's socket) naming the test database."""
    url = urlsplit(os.environ["DATABASE_URL"])
    return urlunsplit(url._replace(path=f"/{connection.settings_dict['NAME']}"))


def wait_for(check: Callable[[], T], *, what: str, timeout: float = 60) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := check():
            return result
        time.sleep(0.05)
    raise AssertionError(f"waited {timeout} s for {what}")
