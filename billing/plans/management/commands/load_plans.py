from pathlib import Path
from typing import Any

import yaml
from django.core.management.base import BaseCommand, CommandError

from billing.plans.schemas import load_yaml_exact
from billing.plans.services import PriceBookError, plans_load


class Command(BaseCommand):
    help = (
        "Load plans from a YAML or JSON price book (see README, 'Plans and prices'). All or "
        "nothing: a bad file changes nothing and the error names its line or key. A plan "
        "whose prices changed gets a new version; an unchanged plan is left alone."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("path", type=Path)

    def handle(self, *args: Any, path: Path, **options: Any) -> None:
        try:
            document = load_yaml_exact(path.read_text())
        except OSError as exc:
            raise CommandError(f"{path}: {exc.strerror}") from exc
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "?"
            raise CommandError(f"{path}: {where}: {getattr(exc, 'problem', exc)}") from exc
        try:
            loaded = plans_load(document=document)
        except PriceBookError as exc:
            raise CommandError(f"{path}: {exc}") from exc
        for plan in loaded:
            state = "new version" if plan.changed else "unchanged"
            self.stdout.write(f"{plan.code} v{plan.version}: {state}")
