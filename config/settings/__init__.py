"""Settings of one integration per module; config/django/base.py puts them together."""
