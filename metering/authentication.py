"""`Authorization: Api-Key <key>` for every /v1 endpoint except health and webhooks.

Keys are djangorestframework-api-key's: stored as a SHA-512 hash beside a visible
prefix, revocable, with an optional expiry. A refused key answers 401 with a JSON error
that says why (unknown, revoked, expired).
"""

from dataclasses import dataclass
from typing import Any

from django.http import HttpRequest
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication
from rest_framework_api_key.models import APIKey
from rest_framework_api_key.permissions import KeyParser


@dataclass(frozen=True, slots=True)
class ApiClient:
    """The product backend behind a key: DRF's `request.user` for API requests."""

    name: str
    key_prefix: str
    is_authenticated: bool = True


class ApiKeyAuthentication(BaseAuthentication):
    keyword = "Api-Key"
    key_parser = KeyParser()

    def authenticate(self, request: HttpRequest) -> tuple[ApiClient, APIKey] | None:
        key = self.key_parser.get(request)
        if not key:
            return None  # IsAuthenticated then answers 401 "not_authenticated"
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
        return ApiClient(name=api_key.name, key_prefix=api_key.prefix), api_key

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
