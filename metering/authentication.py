"""`Authorization: Api-Key <key>` for every /v1 endpoint except health and webhooks.

Keys are djangorestframework-api-key's: stored as a SHA-512 hash beside a visible
prefix, revocable, with an optional expiry. A refused key answers 401 with a JSON error
that says why (unknown, revoked, expired).

A key verified against the database is remembered by this process for
API_KEY_CACHE_SECONDS (default 10): ingest is called per LLM call, and the lookup would
otherwise be a database round trip on every request. So a revocation takes effect within
that many seconds; an expiry takes effect at once.
"""

import hashlib
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings
from django.http import HttpRequest
from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication
from rest_framework_api_key.models import APIKey
from rest_framework_api_key.permissions import KeyParser

from api.throttling import (
    client_address,
    parse_rate,
    window_count,
    window_hit,
)


@dataclass(frozen=True, slots=True)
class ApiClient:
    """The product backend behind a key: DRF's `request.user` for API requests."""

    name: str
    key_prefix: str
    expiry_date: datetime | None
    is_authenticated: bool = True


_MAX_CACHED_KEYS = 1000
# SHA-512 of the key -> (monotonic time of verification, the client behind it)
_recently_verified: dict[str, tuple[float, ApiClient]] = {}


def _cached_client(key_digest: str) -> ApiClient | None:
    entry = _recently_verified.get(key_digest)
    if entry is None:
        return None
    verified_at, client = entry
    expired = client.expiry_date is not None and client.expiry_date <= timezone.now()
    if expired or time.monotonic() - verified_at > settings.API_KEY_CACHE_SECONDS:
        _recently_verified.pop(key_digest, None)
        return None
    return client


class ApiKeyAuthentication(BaseAuthentication):
    keyword = "Api-Key"
    key_parser = KeyParser()

    def authenticate(self, request: HttpRequest) -> tuple[ApiClient, str] | None:
        key = self.key_parser.get(request)
        if not key:
            return None  # IsAuthenticated then answers 401 "not_authenticated"
        key_digest = hashlib.sha512(key.encode()).hexdigest()
        client = _cached_client(key_digest)
        if client is None:
            client = self._verify_throttled(key, client_address(request))
            if len(_recently_verified) >= _MAX_CACHED_KEYS:
                _recently_verified.clear()
            _recently_verified[key_digest] = (time.monotonic(), client)
        return client, client.key_prefix

    def _verify_throttled(self, key: str, address: str) -> ApiClient:
        """Verify, unless this address failed too often lately: guessing keys costs a
        429 (with Retry-After) after API_AUTH_FAILURE_LIMIT failures per window."""
        limit = parse_rate(settings.API_AUTH_FAILURE_LIMIT)
        if (
            limit is not None
            and window_count("auth", address, settings.API_AUTH_FAILURE_LIMIT) >= (limit[0])
        ):
            raise exceptions.Throttled(wait=limit[1], detail="Too many failed API keys.")
        try:
            return self._verify(key)
        except exceptions.AuthenticationFailed:
            window_hit("auth", address, settings.API_AUTH_FAILURE_LIMIT)
            raise

    def _verify(self, key: str) -> ApiClient:
        # Looked up by prefix among all keys, revoked and expired included, so that the
        # answer can say why a real key is refused.
        prefix, _, _ = key.partition(".")
        api_key = APIKey.objects.filter(prefix=prefix).first()
        if api_key is None or not api_key.is_valid(key):
            raise exceptions.AuthenticationFailed("Unknown API key.", code="invalid_api_key")
        if api_key.revoked:
            raise exceptions.AuthenticationFailed(
                "This API key was revoked.", code="revoked_api_key"
            )
        if api_key.has_expired:
            raise exceptions.AuthenticationFailed(
                "This API key has expired.", code="expired_api_key"
            )
        return ApiClient(
            name=api_key.name, key_prefix=api_key.prefix, expiry_date=api_key.expiry_date
        )

    def authenticate_header(self, request: HttpRequest) -> str:
        return self.keyword


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    """Describes the key header in the OpenAPI schema."""

    target_class = ApiKeyAuthentication
    name = "ApiKey"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "`Api-Key <key>`, as printed by `manage.py create_api_key`.",
        }
