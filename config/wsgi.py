"""The WSGI application, with the client's address taken from the proxy in front.

Behind nginx (config/front.py, docker-compose.yml) every request comes from the proxy:
gunicorn, listening on a unix socket, gives REMOTE_ADDR as "". The proxy replaces
X-Forwarded-For with the address it saw, so for requests from a trusted proxy — a peer
on the unix socket, or an address in API_TRUSTED_PROXIES — REMOTE_ADDR becomes the last
address of that header. The failed-key and webhook limits, the admin's lockouts and the
logs then see the client, and a client's own X-Forwarded-For counts for nothing.
"""

import ipaddress
import os
from collections.abc import Callable, Iterable
from typing import Any

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.django.base")

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def from_trusted_proxy(
    peer: str, trusted: list[ipaddress.IPv4Network | ipaddress.IPv6Network]
) -> bool:
    if peer == "":  # a unix socket: only a process on this host, the proxy, can connect
        return True
    try:
        address = ipaddress.ip_address(peer)
    except ValueError:
        return False
    return any(address in network for network in trusted)


def client_address_from_proxy(app: WsgiApp, trusted_proxies: list[str]) -> WsgiApp:
    trusted = [ipaddress.ip_network(proxy, strict=False) for proxy in trusted_proxies]

    def application(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if from_trusted_proxy(environ.get("REMOTE_ADDR", ""), trusted):
            forwarded = environ.get("HTTP_X_FORWARDED_FOR", "").rsplit(",", 1)[-1].strip()
            environ["REMOTE_ADDR"] = forwarded
        return app(environ, start_response)

    return application


def _application() -> WsgiApp:
    django_application = get_wsgi_application()
    from django.conf import settings

    return client_address_from_proxy(django_application, settings.API_TRUSTED_PROXIES)


application = _application()
