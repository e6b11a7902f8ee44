from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from billing.invoicing.fx import FxFileError, fx_rates_load


class Command(BaseCommand):
    help = (
        "Load FX rates from a CSV file with the columns currency,effective_from,usd_per_unit "
        "(what one unit is worth in USD from that moment). All or nothing; errors name the line."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("path", type=Path)

    def handle(self, *args: Any, path: Path, **options: Any) -> None:
        try:
            changed = fx_rates_load(text=path.read_text())
        except OSError as exc:
            raise CommandError(f"{path}: {exc.strerror}") from exc
        except FxFileError as exc:
            raise CommandError(f"{path}: {exc}") from exc
        self.stdout.write(f"{changed} rate(s) new or changed")
