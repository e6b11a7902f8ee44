"""Alert webhooks: where they may go, how they are signed, how they are sent.

Signing (for receivers): each request carries

    Payback-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>." + body, keyed by the
                       endpoint's secret>

Recompute the HMAC over the raw body, compare in constant time, and refuse a timestamp
more than five minutes old (a replayed request). `Payback-Delivery` is the delivery id:
the same alert to the same endpoint always has the same one, so a receiver can drop a
repeat.

Where they may go: an endpoint's host must resolve only to public addresses. Loopback,
private (RFC 1918, unique-local), link-local (and so the 169.254.169.254 metadata
service), shared, reserved, site-local, multicast and unspecified addresses are refused,
however the address is spelled (a decimal 2130706433 is 127.0.0.1; an IPv6 address that
carries an IPv4 one, mapped, compatible, NAT64, 6to4 or Teredo, is judged by both) or
reached (a name, a redirect).
The check runs when an endpoint is saved and again at each send, which then connects to
the address it checked (no second lookup for a rebinding DNS server to answer).
Networks listed in ALERT_WEBHOOK_ALLOWED_NETWORKS (an internal alert relay) are let
through.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import socket
import ssl
import time
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import urllib3
from django.conf import settings

SIGNATURE_HEADER = "Payback-Signature"
DELIVERY_HEADER = "Payback-Delivery"
MAX_REDIRECTS = 3


class UnsafeUrl(Exception):
    """A webhook URL that must not be requested: the message says why."""


def _allowed(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    return any(
        address in ipaddress.ip_network(network)
        for network in settings.ALERT_WEBHOOK_ALLOWED_NETWORKS
    )


_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one carries, which a network may route to: IPv4-mapped
    (::ffff:a.b.c.d), IPv4-compatible (::a.b.c.d), NAT64 (64:ff9b::/96), 6to4 (2002::/16)
    and Teredo (2001::/32, its client)."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if address in _NAT64 or (int(address) >> 32 == 0 and int(address) > 0xFFFF):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def address_check(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """The address, if a webhook may be sent to it; else UnsafeUrl. An IPv6 address that
    carries an IPv4 one is judged by both."""
    address = ipaddress.ip_address(text.split("%", 1)[0])
    candidates: list[ipaddress.IPv4Address | ipaddress.IPv6Address] = [address]
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            candidates.insert(0, embedded)
    if any(_allowed(candidate) for candidate in candidates):
        return address
    for candidate in candidates:
        for test, what in (
            (candidate.is_loopback, "loopback"),
            (candidate.is_link_local, "link-local (cloud metadata lives there)"),
            (candidate.is_private, "private"),
            (candidate.is_multicast, "multicast"),
            (candidate.is_unspecified, "unspecified"),
            (candidate.is_reserved, "reserved"),
            (
                isinstance(candidate, ipaddress.IPv6Address) and candidate.is_site_local,
                "site-local",
            ),
            (not candidate.is_global, "not public"),
        ):
            if test:
                shown = candidate if candidate == address else f"{address} ({candidate})"
                raise UnsafeUrl(f"{shown} is a {what} address")
    return address


@dataclass(frozen=True, slots=True)
class Target:
    scheme: str
    host: str  # as written, for the Host header and TLS
    port: int
    path: str  # path and query
    address: str  # the checked address to connect to


def url_check(url: str) -> Target:
    """Where a webhook to `url` would connect, after checking every address its host
    resolves to; UnsafeUrl if any is not public, or the URL is not one to send to."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as bad:
        raise UnsafeUrl(f"not a valid URL: {bad}") from None
    if parts.scheme not in ("http", "https"):
        raise UnsafeUrl("the URL must be http or https")
    if not parts.hostname:
        raise UnsafeUrl("the URL has no host")
    if parts.username or parts.password:
        raise UnsafeUrl("the URL must not carry credentials")
    port = port or (443 if parts.scheme == "https" else 80)
    try:
        found = socket.getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as failed:
        raise UnsafeUrl(f"{parts.hostname} does not resolve: {failed}") from None
    addresses = [address_check(str(info[4][0])) for info in found]
    path = parts.path or "/"
    if parts.query:
        path += f"?{parts.query}"
    return Target(parts.scheme, parts.hostname, port, path, str(addresses[0]))


def signature(*, secret: str, body: bytes, timestamp: int) -> str:
    """The Payback-Signature header value of `body` sent at `timestamp`."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={digest.hexdigest()}"


def signature_verify(*, secret: str, body: bytes, header: str, tolerance: int = 300) -> bool:
    """What a receiver does (also a reference for one written in another language)."""
    try:
        fields = dict(part.split("=", 1) for part in header.split(","))
        timestamp = int(fields["t"])
    except (KeyError, ValueError):
        return False
    if abs(time.time() - timestamp) > tolerance:
        return False
    expected = signature(secret=secret, body=body, timestamp=timestamp)
    return hmac.compare_digest(expected, header)


def _post_once(target: Target, body: bytes, headers: dict[str, str]) -> urllib3.BaseHTTPResponse:
    timeout = urllib3.Timeout(connect=5, read=settings.ALERT_WEBHOOK_TIMEOUT_SECONDS)
    pool: urllib3.HTTPConnectionPool
    if target.scheme == "https":
        pool = urllib3.HTTPSConnectionPool(
            target.address,
            target.port,
            server_hostname=target.host,
            assert_hostname=target.host,
            ssl_context=ssl.create_default_context(),
            timeout=timeout,
            retries=False,
        )
    else:
        pool = urllib3.HTTPConnectionPool(
            target.address, target.port, timeout=timeout, retries=False
        )
    default_port = 443 if target.scheme == "https" else 80
    host = target.host if ":" not in target.host else f"[{target.host}]"
    with pool:
        return pool.urlopen(
            "POST",
            target.path,
            body=body,
            headers={
                **headers,
                "Host": host if target.port == default_port else f"{host}:{target.port}",
            },
            redirect=False,
            preload_content=True,
        )


def webhook_post(*, url: str, secret: str, body: bytes, delivery_id: int) -> int:
    """POST a signed alert to `url`, following up to three redirects, each checked like the
    URL itself. Returns the final status; UnsafeUrl when a hop is refused (nothing is
    sent to it); urllib3 errors when the network fails."""
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "payback-alerts/1",
        DELIVERY_HEADER: str(delivery_id),
        SIGNATURE_HEADER: signature(secret=secret, body=body, timestamp=int(time.time())),
    }
    for _ in range(MAX_REDIRECTS + 1):
        target = url_check(url)
        response = _post_once(target, body, headers)
        location = response.headers.get("Location")
        if response.status not in (301, 302, 303, 307, 308) or not location:
            return response.status
        url = urljoin(url, location)
    raise UnsafeUrl(f"more than {MAX_REDIRECTS} redirects")
