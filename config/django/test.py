"""Test settings: the base, with a fast password hasher (tests create staff users)."""

from config.django.base import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# The SDK's transactional outbox (sdk/python, payback_client.django), installed as a
# product backend would install it, so that tests/sdk can send from it to payback's
# own server.
INSTALLED_APPS = [*INSTALLED_APPS, "payback_client.django"]  # noqa: F405
