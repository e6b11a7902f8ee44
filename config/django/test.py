"""Test settings: the base, with a fast password hasher (tests create staff users)."""

from config.django.base import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
