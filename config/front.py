"""The API as it is served: gunicorn's sync workers behind nginx.

A sync worker reads its request itself, so a client that sends half a request and waits
holds that worker until gunicorn's timeout (two such connections took a two-worker API
down for 60 s, no key needed). nginx in front reads every request whole, with its own
timeouts and body limit, and hands gunicorn only complete ones over a unix socket:
slow and idle clients cost nginx a few KiB each and no worker. gunicorn's sync workers
stay because nothing measured faster for ingest (README, Performance).

`make run` starts both through `start`; docker-compose.yml runs the same nginx
configuration (config/nginx/payback.conf.template) in its own container.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import string
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

from config.env import BASE_DIR

NGINX_TEMPLATE = BASE_DIR / "config" / "nginx" / "payback.conf.template"
# Connections one client address may hold open at nginx (PAYBACK_CONNECTIONS_PER_ADDRESS).
CONNECTIONS_PER_ADDRESS = 256


def nginx_binary() -> str:
    found = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")
    if found is None:
        raise RuntimeError(
            "nginx is not installed: `make run` installs it (apt-get install nginx-light)"
        )
    return found


def gunicorn_command(bind: str) -> list[str]:
    """The API server, config/gunicorn.py, listening on `bind` (unix:PATH or HOST:PORT)."""
    gunicorn = Path(sys.executable).parent / "gunicorn"
    config = BASE_DIR / "config" / "gunicorn.py"
    return [str(gunicorn), "config.wsgi", "-c", str(config), "--bind", bind]


def nginx_config(folder: Path, *, listen: str, api_socket: Path, max_body_bytes: int) -> Path:
    """Write nginx's configuration for a proxy on `listen` to the API on `api_socket`,
    keeping its pid, log and buffered bodies in `folder`; returns the main file."""
    folder.mkdir(parents=True, exist_ok=True)
    server = string.Template(NGINX_TEMPLATE.read_text()).safe_substitute(
        PAYBACK_LISTEN=listen,
        PAYBACK_API_SOCKET=str(api_socket),
        PAYBACK_MAX_BODY_BYTES=str(max_body_bytes),
        PAYBACK_CONNECTIONS_PER_ADDRESS=str(
            os.environ.get("PAYBACK_CONNECTIONS_PER_ADDRESS") or CONNECTIONS_PER_ADDRESS
        ),
    )
    (folder / "payback.conf").write_text(server)
    temp = {name: folder / name for name in ("body", "proxy", "fastcgi", "uwsgi", "scgi")}
    main = folder / "nginx.conf"
    main.write_text(
        "\n".join(
            [
                # As root, nginx's workers would switch to `nobody`, who cannot open the
                # API's socket in a private folder.
                "user root;" if os.geteuid() == 0 else "",
                "worker_processes 1;",
                "daemon off;",
                f"pid {folder / 'nginx.pid'};",
                f"error_log {folder / 'error.log'} warn;",
                "events { worker_connections 4096; }",
                "http {",
                "    access_log off;",
                f"    client_body_temp_path {temp['body']};",
                f"    proxy_temp_path {temp['proxy']};",
                f"    fastcgi_temp_path {temp['fastcgi']};",
                f"    uwsgi_temp_path {temp['uwsgi']};",
                f"    scgi_temp_path {temp['scgi']};",
                f"    include {folder / 'payback.conf'};",
                "}",
                "",
            ]
        )
    )
    return main


def start(
    folder: Path, *, listen: str, env: Mapping[str, str] | None = None
) -> list[subprocess.Popen[bytes]]:
    """Start gunicorn on a unix socket in `folder` and nginx on `listen` in front of it;
    returns both processes (gunicorn first) once the socket is there. Each runs in a
    process group of its own, so `stop` ends its workers too."""
    from config.settings.api import API_MAX_BODY_BYTES

    environment = dict(os.environ if env is None else env)
    nginx = nginx_binary()  # before gunicorn: a missing nginx must leave nothing running
    folder.mkdir(parents=True, exist_ok=True)
    api_socket = folder / "api.sock"
    api_socket.unlink(missing_ok=True)
    api = subprocess.Popen(
        gunicorn_command(f"unix:{api_socket}"),
        cwd=BASE_DIR,
        env=environment,
        start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while not api_socket.exists():
        if api.poll() is not None or time.monotonic() > deadline:
            stop([api])
            raise RuntimeError(f"gunicorn did not start on {api_socket}")
        time.sleep(0.05)
    config = nginx_config(
        folder / "nginx",
        listen=listen,
        api_socket=api_socket,
        max_body_bytes=API_MAX_BODY_BYTES,
    )
    try:
        proxy = subprocess.Popen(
            [nginx, "-c", str(config), "-e", str(folder / "nginx" / "error.log")],
            cwd=BASE_DIR,
            env=environment,
            start_new_session=True,
        )
    except OSError:
        stop([api])
        raise
    return [api, proxy]


def stop(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
    for process in processes:
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
