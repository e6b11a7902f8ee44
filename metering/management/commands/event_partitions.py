from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from api.errors import ApiError
from metering.selectors import event_partitions
from metering.services import event_partition_detach, event_partitions_ensure
from metering.services.partitions import Month


class Command(BaseCommand):
    help = (
        "List the events table's monthly partitions; --ensure creates this month's and the"
        " months ahead (as beat does hourly); --detach YYYY-MM takes an old month out of"
        " the table for retention (the table stays, to be dumped and dropped)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        action = parser.add_mutually_exclusive_group()
        action.add_argument("--ensure", action="store_true")
        action.add_argument("--detach", metavar="YYYY-MM", type=_month)

    def handle(self, *args: Any, ensure: bool, detach: Month | None, **options: Any) -> None:
        if ensure:
            created = event_partitions_ensure()
            self.stdout.write(f"created: {', '.join(map(str, created)) or 'none'}")
        elif detach is not None:
            try:
                table = event_partition_detach(month=detach)
            except ApiError as error:
                raise CommandError(str(error)) from error
            self.stdout.write(
                f"{table} detached: its events are no longer read by payback. Keep a copy"
                f" (pg_dump -t {table}) and then DROP TABLE {table}."
            )
        for partition in event_partitions():
            state = "attached" if partition.attached else "DETACHED"
            month = str(partition.month) if partition.month else "default"
            self.stdout.write(f"{month:8} {partition.name:36} {state:9} ~{partition.rows} rows")


def _month(text: str) -> Month:
    try:
        return Month.parse(text)
    except ValueError as error:
        raise CommandError(f"--detach takes a month as YYYY-MM, not {text!r}") from error
