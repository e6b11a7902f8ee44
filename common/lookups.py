"""ORM lookups the house adds: imported by the modules that use them (importing registers
them on every field)."""

from __future__ import annotations

from typing import Any

from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Field, ForeignObject, Lookup
from django.db.models.sql.compiler import SQLCompiler


class AnyOf(Lookup):
    """`field__any_of=values`: `field = ANY(%s)`, the values sent as one array. What
    `__in` says, for long lists: `__in` sends a placeholder per value, which the driver
    splits the statement on and the server reads one by one (a margin report names
    10,000 customers). The values as the column stores them: ids, not model instances."""

    lookup_name = "any_of"
    prepare_rhs = False

    def as_sql(
        self, compiler: SQLCompiler, connection: BaseDatabaseWrapper
    ) -> tuple[str, list[Any]]:
        lhs, lhs_params = self.process_lhs(compiler, connection)
        return f"{lhs} = ANY(%s)", [*lhs_params, list(self.rhs)]


# Foreign keys read their own lookups, not Field's.
Field.register_lookup(AnyOf)
ForeignObject.register_lookup(AnyOf)
