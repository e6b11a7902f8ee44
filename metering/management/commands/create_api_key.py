from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand
from django.utils import timezone
from rest_framework_api_key.models import APIKey


class Command(BaseCommand):
    help = "Create an API key for a product backend and print it. It is shown only this once."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("name", help="Who uses the key, e.g. 'support-bot backend'.")
        parser.add_argument("--expires-in-days", type=int, default=None)

    def handle(self, *args: Any, name: str, expires_in_days: int | None, **options: Any) -> None:
        expiry = timezone.now() + timedelta(days=expires_in_days) if expires_in_days else None
        api_key, key = APIKey.objects.create_key(name=name, expiry_date=expiry)
        self.stdout.write(key)
        self.stderr.write(
            f"API key '{api_key.name}' (prefix {api_key.prefix}) created; "
            "store it now, it is not shown again."
        )
