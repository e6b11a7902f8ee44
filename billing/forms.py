"""Admin forms of the billing app: an edited price must pass the same checks as a loaded
price book (billing/services.py), so that rating can always bill it."""

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from billing.models import OutcomePrice, PriceModel, TierMode
from billing.schemas import OutcomePriceDoc, TierDoc
from billing.selectors.margins import GROUP_BYS
from billing.services import PriceBookError, outcome_price_check, tiers_check


class OutcomePriceForm(forms.ModelForm):
    class Meta:
        model = OutcomePrice
        fields = [
            "plan_version",
            "outcome_type",
            "model",
            "unit_price",
            "percentage",
            "floor",
            "cap",
            "included_quantity",
            "tier_mode",
            "package_size",
        ]

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        percentage = data.get("percentage") if data.get("model") == PriceModel.PERCENTAGE else None
        if data.get("model") == PriceModel.PERCENTAGE and percentage is None:
            raise ValidationError({"percentage": "A percentage price needs its percentage."})
        tier_mode = data.get("tier_mode")
        doc = OutcomePriceDoc(
            type=data.get("outcome_type") or "x",
            unit_price=data.get("unit_price"),
            percentage=percentage,
            floor=data.get("floor"),
            cap=data.get("cap"),
            included=data.get("included_quantity") or 0,
            tier_mode=None if tier_mode in (None, TierMode.NONE) else tier_mode,
            package_size=data.get("package_size"),
        )
        try:
            outcome_price_check("", doc, tiers_apart=True)
        except PriceBookError as exc:
            raise ValidationError(str(exc).lstrip(": ")) from exc
        return data


class PriceTierFormSet(forms.BaseInlineFormSet):
    def clean(self) -> None:
        super().clean()
        tiers = [
            TierDoc(
                unit_price=form.cleaned_data["unit_price"], up_to=form.cleaned_data.get("up_to")
            )
            for form in self.forms
            if form.cleaned_data and not form.cleaned_data.get("DELETE")
        ]
        tiers.sort(key=lambda tier: (tier.up_to is None, tier.up_to or 0))
        if tiers:
            try:
                tiers_check("tiers", tiers)
            except PriceBookError as exc:
                raise ValidationError(str(exc)) from exc


class DashboardWindowForm(forms.Form):
    """The dashboard's window: `from` (inclusive) and `to` (exclusive) days, UTC; by
    default the 30 days up to and including today."""

    group_by = forms.ChoiceField(
        choices=[(g, g.replace("_", " ")) for g in GROUP_BYS], required=False
    )

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
        return data
