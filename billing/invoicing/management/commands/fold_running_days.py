from typing import Any

from django.core.management.base import BaseCommand
from django.utils import timezone

from billing.invoicing.folding import running_fold, running_unfold
from billing.invoicing.models import RunningHorizon


class Command(BaseCommand):
    help = (
        "Fold the UTC days that are over into the running rollup now, rather than at the "
        "next beat (invoicing.tasks.fold_running_days), one transaction a day. Running it "
        "twice folds nothing more. --rebuild empties the rollup first and sums every day "
        "in again from the facts (readers read call by call meanwhile)."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--rebuild", action="store_true", help="empty the rollup, then fold every day"
        )

    def handle(self, *args: Any, rebuild: bool, **options: Any) -> None:
        if rebuild:
            running_unfold()
        folded = running_fold(now=timezone.now())
        horizon = RunningHorizon.objects.values_list("day", flat=True).first()
        self.stdout.write(
            f"{folded} days folded; the running rollup holds the days before {horizon}"
        )
