"""Operators' view of outcomes: status filters, and each outcome's attributed calls and
cost (outcomes are facts recorded through the API: read-only here). Disputes are decided
in billing/statements/admin.py, where a credit note can be their remedy."""

from django.contrib import admin

from common.admin import FactsAdmin
from outcomes.models import Outcome
from outcomes.selectors import outcome_cost


@admin.register(Outcome)
class OutcomeAdmin(FactsAdmin):
    list_display = ("external_id", "customer", "type", "status", "occurred_at", "value",
                    "value_currency")  # fmt: skip
    list_filter = ("status", "type", "customer")
    search_fields = ("=external_id",)
    date_hierarchy = "occurred_at"
    list_select_related = ("customer",)
    readonly_fields = ("attributed_calls", "attributed_cost")

    @admin.display(description="attributed calls")
    def attributed_calls(self, outcome: Outcome) -> str:
        cost = outcome_cost(outcome=outcome)
        return f"{cost.calls} ({cost.unpriced_calls} unpriced)"

    @admin.display(description="attributed cost (USD)")
    def attributed_cost(self, outcome: Outcome) -> str:
        cost = outcome_cost(outcome=outcome).cost
        return "unpriced" if cost is None else f"{cost.normalize():f}"
