import time
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from payback_client.django.outbox import outbox_send


class Command(BaseCommand):
    help = "Send the payback outbox's rows, a batch at a time, until it is empty."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--batch-size", type=int, default=1000)
        parser.add_argument(
            "--forever", action="store_true",
            help="Keep going: look again every --interval seconds once it is empty.",
        )  # fmt: skip
        parser.add_argument("--interval", type=float, default=1.0)

    def handle(self, *args: Any, **options: Any) -> None:
        while True:
            done = outbox_send(batch_size=options["batch_size"])
            if done.sent or done.refused:
                self.stdout.write(f"sent {done.sent}, refused {done.refused}")
            if (done.sent or done.refused) and not done.unsent:
                continue  # there may be more
            if not options["forever"]:  # empty, or payback did not answer in time
                return
            time.sleep(options["interval"])
