"""`Authorization: Api-Key <key>` for every /v1 endpoint except health and webhooks.

Keys are djangorestframework-api-key's: stored as a SHA-512 hash beside a visible
prefix, revocable, with an optional expiry. A refused key answers 401 with a JSON error
that says why (unknown, revoked, expired).
"""

from dataclasses import dataclass

from django.http import HttpRequest
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
        try:
            api_key = APIKey.objects.get_from_key(key)
        except APIKey.DoesNotExist:
            raise exceptions.AuthenticationFailed(
                "Unknown API key.", code="invalid_api_key"
            ) from None
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
