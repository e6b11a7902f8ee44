"""The dashboard's form."""

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from billing.analytics.selectors.margins import GROUP_BYS, MarginFilters

FILTERS = ("customer", "outcome_type", "model", "feature", "tier")
# The table's columns on the page (the CSV keeps every figure exactly): the figure, its
# heading in words, and how it reads.
TABLE_COLUMNS = (
    ("revenue", "Revenue", "money"),
    ("known_cost", "Inference cost", "money"),
    ("margin", "Gross margin", "money"),
    ("margin_percent", "Margin %", "percent"),
    ("succeeded", "Outcomes billed", "count"),
    ("cost_per_success", "Cost per success", "unit_cost"),
    ("calls", "Calls", "count"),
    ("unpriced_calls", "Unpriced calls", "count"),
    ("written_off", "Written off", "money"),
)
# Rows of the table on one page: ten thousand customers are a CSV, not a page.
TABLE_PAGE = 50


class DashboardWindowForm(forms.Form):
    """The dashboard's window: `from` (inclusive) and `to` (exclusive) days, UTC; by
    default the 30 days up to and including today."""

    group_by = forms.ChoiceField(
        choices=[(g, g.replace("_", " ")) for g in GROUP_BYS], required=False
    )
    # Drill-down: the window's figures for one customer, outcome type, model, feature or
    # tier (a link from a chart or the table).
    customer = forms.CharField(required=False, max_length=200)
    outcome_type = forms.CharField(required=False, max_length=100)
    model = forms.CharField(required=False, max_length=300)
    feature = forms.CharField(required=False, max_length=100)
    tier = forms.CharField(required=False, max_length=50)
    # The margin table: sorted by its key or a figure, a page of TABLE_PAGE rows at a time.
    sort = forms.ChoiceField(
        choices=[("key", "key"), *[(name, label) for name, label, _ in TABLE_COLUMNS]],
        required=False,
    )
    order = forms.ChoiceField(
        choices=[("asc", "ascending"), ("desc", "descending")], required=False
    )
    page = forms.IntegerField(min_value=1, required=False)

    def __init__(self, *args: Any, today: date, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.today = today
        # `from` is a Python keyword: the fields are added by name.
        self.fields["from"] = forms.DateField(required=False)
        self.fields["to"] = forms.DateField(required=False)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        end = data.get("to") or self.today + timedelta(days=1)
        start = data.get("from") or end - timedelta(days=30)
        if start >= end:
            raise ValidationError({"to": "`to` must be after `from`."})
        data["start"] = datetime.combine(start, time(0), tzinfo=UTC)
        data["end"] = datetime.combine(end, time(0), tzinfo=UTC)
        data["group_by"] = data.get("group_by") or "customer"
        # By default the largest revenue first; a key in its own order.
        data["sort"] = data.get("sort") or "revenue"
        data["order"] = data.get("order") or ("asc" if data["sort"] == "key" else "desc")
        data["page"] = data.get("page") or 1
        data["filters"] = MarginFilters(
            **{name: data.get(name) or None for name in FILTERS}  # type: ignore[arg-type]
        )
        return data
