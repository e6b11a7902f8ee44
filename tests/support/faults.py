"""Taking real parts away in tests: a TCP proxy between payback and a real server (stop:
every open connection is cut and new ones refused; start: back on the same port), the
broker pointed at a port where nothing listens, and a Redis server frozen by SIGSTOP (it
accepts connections and never answers, as a hung or half-partitioned server does)."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

from config.celery import app as celery_app
from config.embedded import redis_start


def _publish_to(url: str) -> None:
    """Point the Celery app's publishing at `url` (its pools are rebuilt)."""
    celery_app.conf.broker_url = celery_app.conf.broker_write_url = url
    celery_app._pool = None
    celery_app.amqp._producer_pool = None


@contextlib.contextmanager
def publishing_to(url: str) -> Iterator[None]:
    """This process publishes to `url` inside the block (a worker already running keeps
    its own connection)."""
    broker = celery_app.conf.broker_url
    _publish_to(url)
    try:
        yield
    finally:
        _publish_to(broker)


@contextlib.contextmanager
def broker_down() -> Iterator[None]:
    """Enqueueing fails inside the block, as with the broker down."""
    with publishing_to("redis://127.0.0.1:1/0"):  # nothing listens there
        yield


@contextlib.contextmanager
def frozen_redis() -> Iterator[str]:
    """A Redis server of the test's own, stopped with SIGSTOP: connecting works (the
    kernel accepts), no command is ever answered. Yields its URL (a unix socket);
    resumed and shut down after the block."""
    folder = Path(tempfile.mkdtemp(prefix="payback-frozen-"))  # a short unix socket path
    server, url = redis_start(folder)
    os.kill(server.pid, signal.SIGSTOP)
    try:
        yield url
    finally:
        os.kill(server.pid, signal.SIGCONT)
        server.terminate()
        server.wait(timeout=10)
        shutil.rmtree(folder, ignore_errors=True)


class TcpProxy:
    def __init__(self, target_host: str, target_port: int, listen_host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        self.listen_host = listen_host
        with socket.socket() as probe:
            probe.bind((listen_host, 0))
            self.port = probe.getsockname()[1]
        self._listener: socket.socket | None = None
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()

    def _target_socket(self) -> socket.socket:
        host, port = self.target
        if host.startswith("/"):  # a unix-socket directory, as libpq understands it
            unix = socket.socket(socket.AF_UNIX)
            unix.connect(f"{host}/.s.PGSQL.{port}")
            return unix
        return socket.create_connection(self.target)

    def start(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((self.listen_host, self.port))
        listener.listen()
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # stopped
            upstream = self._target_socket()
            with self._lock:
                self._open |= {client, upstream}
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                with contextlib.suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)

    def stop(self) -> None:
        """Refuse new connections and cut the open ones, as a server that died."""
        if self._listener is not None:
            # shutdown wakes the thread blocked in accept(); close alone would leave the
            # port listening until it returned.
            with contextlib.suppress(OSError):
                self._listener.shutdown(socket.SHUT_RDWR)
            self._listener.close()
            self._listener = None
        with self._lock:
            for end in self._open:
                with contextlib.suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)
                end.close()
            self._open.clear()
