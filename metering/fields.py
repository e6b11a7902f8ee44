"""Model fields payback adds to Django's."""

from typing import Any

from django.db import models
from django.db.backends.base.base import BaseDatabaseWrapper


class TransactionIdField(models.Field):  # type: ignore[type-arg]
    """A PostgreSQL `xid8`: the id of the transaction that wrote a change. Billing compares
    it with a close's snapshot (`pg_visible_in_snapshot`) to tell what that close saw by
    commit order rather than by a clock (billing/invoicing/watermark.py). Written by the database
    (a column default, a trigger, `pg_current_xact_id()` in an update), never by Python."""

    description = "PostgreSQL transaction id (xid8)"

    def db_type(self, connection: BaseDatabaseWrapper) -> str:
        return "xid8"

    def from_db_value(self, value: Any, expression: Any, connection: BaseDatabaseWrapper) -> Any:
        return None if value is None else int(value)

    def get_db_prep_value(
        self, value: Any, connection: BaseDatabaseWrapper, prepared: bool = False
    ) -> Any:
        # As text, which PostgreSQL reads as xid8 (a Python int would travel as bigint,
        # which has no cast to xid8). Only a save() of a whole row sends one back.
        value = super().get_db_prep_value(value, connection, prepared)
        return None if value is None or hasattr(value, "as_sql") else str(value)


def current_transaction_id() -> models.Func:
    """`pg_current_xact_id()`: the id of the writing transaction (its top-level one, also
    inside a savepoint), which is what a snapshot lists as in progress."""
    return models.Func(function="pg_current_xact_id", output_field=TransactionIdField())
