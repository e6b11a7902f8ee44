import sys
from datetime import UTC, datetime
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from billing.invoicing.selectors import periods_due
from billing.invoicing.services import periods_due_close


class Command(BaseCommand):
    help = (
        "Close the billing periods that are due (ended more than the grace window ago) into "
        "invoices, now rather than at the next beat, many customers per transaction. "
        "Closing twice creates nothing new."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--as-of", help="ISO date or datetime to close up to (default: now)")
        parser.add_argument("--customer", help="only this customer's external id")
        parser.add_argument("--dry-run", action="store_true", help="list, close nothing")
        parser.add_argument(
            "--processes", type=int, default=1, help="close chunks in this many processes"
        )

    def handle(
        self,
        *args: Any,
        as_of: str | None,
        customer: str | None,
        dry_run: bool,
        processes: int,
        **options: Any,
    ) -> None:
        moment = timezone.now()
        if as_of:
            try:
                moment = datetime.fromisoformat(as_of)
            except ValueError as exc:
                raise CommandError(f"--as-of {as_of!r} is not an ISO date") from exc
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=UTC)
        if dry_run:
            due = list(periods_due(as_of=moment, customer_external_id=customer))
            for period in due:
                self.stdout.write(
                    f"due: customer {period.customer_id} "
                    f"[{period.start.isoformat()}, {period.end.isoformat()})"
                )
            self.stdout.write(f"{len(due)} period(s) due")
            return

        def progress(done: int, total: int) -> None:
            if sys.stderr.isatty() or done == total:
                bar = "#" * (30 * done // max(total, 1))
                self.stderr.write(f"\r[{bar:<30}] {done}/{total} periods", ending="")

        created = periods_due_close(
            as_of=moment, customer_external_id=customer, processes=processes, progress=progress
        )
        self.stderr.write("")
        self.stdout.write(f"{created} invoice(s) made")
