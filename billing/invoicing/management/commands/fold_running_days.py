from typing import Any

from django.core.management.base import BaseCommand
from django.utils import timezone

from billing.invoicing.folding import running_fold
from billing.invoicing.models import RunningHorizon


class Command(BaseCommand):
    help = (
        "Fold the UTC days that are over into the running rollup now, rather than at the "
        "next beat (invoicing.tasks.fold_running_days), one transaction a day. Running it "
        "twice folds nothing more."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        folded = running_fold(now=timezone.now())
        horizon = RunningHorizon.objects.values_list("day", flat=True).first()
        self.stdout.write(
            f"{folded} days folded; the running rollup holds the days before {horizon}"
        )
