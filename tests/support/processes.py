"""Helpers for tests that run payback's own processes (workers, the API server): the
test database as their DATABASE_URL, and waiting for something they do."""

from __future__ import annotations

import http.client
import json
import os
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

from django.db import connection

T = TypeVar("T")


def database_url() -> str:
    """The test database as a DATABASE_URL, for other processes: the session's
    DATABASE_URL (a server, or the embedded one's socket) naming the test database."""
    url = urlsplit(os.environ["DATABASE_URL"])
    return urlunsplit(url._replace(path=f"/{connection.settings_dict['NAME']}"))


def closable_month(now: datetime | None = None) -> tuple[datetime, datetime, datetime]:
    """Last calendar month (UTC), for tests that post facts over HTTP and close them: its
    start, its last day at noon (within the late-fact window whatever today is) and its
    end."""
    now = now or datetime.now(UTC)
    end = datetime(now.year, now.month, 1, tzinfo=UTC)
    start = (end - timedelta(days=1)).replace(day=1)
    return start, end - timedelta(hours=12), end


def json_request(
    host: str, port: int, method: str, path: str, body: Any = None, *, key: str = ""
) -> tuple[int, Any]:
    """One request with a JSON body to a server of the test's own: (status, decoded body)."""
    connection = http.client.HTTPConnection(host, port, timeout=30)
    connection.request(
        method,
        path,
        body=None if body is None else json.dumps(body),
        headers={"Authorization": f"Api-Key {key}", "Content-Type": "application/json"},
    )
    response = connection.getresponse()
    return response.status, json.loads(response.read() or b"null")
