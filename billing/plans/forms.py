"""Admin forms of plans: an edited price must pass the same checks as a loaded price book
(billing/plans/services.py), so that rating can always bill it."""

from typing import Any

import msgspec
from django import forms
from django.core.exceptions import ValidationError

from billing.plans.models import OutcomePrice, PlanVersion, PriceModel, Subscription, TierMode
from billing.plans.schemas import (
    DimensionMarkupDoc,
    DimensionPriceDoc,
    OutcomePriceDoc,
    PassThroughDoc,
    PlanDoc,
    TierDoc,
)
from billing.plans.services import (
    PriceBookError,
    outcome_price_check,
    plan_check,
    subscription_periods_refused,
    tiers_check,
)


def plan_document_of(version: PlanVersion, **changes: Any) -> PlanDoc:
    """A version's plan-level fields as a price-book document (its outcome prices and
    pass-through left to the caller), for the loader's checks."""
    fields = {
        "code": version.plan.code,
        "name": version.plan.name,
        "currency": version.currency,
        "base_fee": version.base_fee,
        "minimum_spend": version.minimum_spend,
        "premium_seat_fee": version.premium_seat_fee,
        "seat_mode": version.seat_mode,
        "reversal_window_days": version.reversal_window_days,
        "collection_method": version.collection_method,
        "days_until_due": version.days_until_due,
        "included_features": list(version.included_features),
        "premium_target_margin_percent": version.premium_target_margin_percent,
    }
    return PlanDoc(**(fields | changes))


def _refused(exc: PriceBookError) -> ValidationError:
    return ValidationError(str(exc).lstrip(": "))


class SubscriptionForm(forms.ModelForm):
    """A subscription edited in the admin: how its periods run is fixed once one of them is
    invoiced (as over the API)."""

    class Meta:
        model = Subscription
        fields = [
            "customer",
            "plan",
            "premium_seats",
            "started_at",
            "billing_anchor_day",
            "timezone",
        ]

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if self.instance.pk is not None:
            refused = subscription_periods_refused(
                customer=self.instance.customer, changed=self.changed_data
            )
            if refused:
                raise ValidationError(refused)
        return data


class PlanVersionForm(forms.ModelForm):
    """A version's own fields, checked as the loader checks them (currency, fees, target
    margin)."""

    class Meta:
        model = PlanVersion
        fields = [
            "plan",
            "version",
            "currency",
            "base_fee",
            "minimum_spend",
            "premium_seat_fee",
            "seat_mode",
            "reversal_window_days",
            "collection_method",
            "days_until_due",
            "included_features",
            "premium_target_margin_percent",
        ]

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if self.errors or data.get("plan") is None:
            return data
        version = PlanVersion(**{name: data.get(name) for name in self.Meta.fields})
        version.included_features = data.get("included_features") or []
        try:
            plan_check("", plan_document_of(version))
        except (PriceBookError, msgspec.ValidationError, TypeError) as exc:
            raise ValidationError(str(exc).lstrip(": ")) from exc
        return data


def pass_through_doc(data: dict[str, Any]) -> PassThroughDoc:
    """A pass-through row of the admin as the document has it."""
    try:
        markups = msgspec.convert(
            data.get("dimension_markups") or [], list[DimensionMarkupDoc], strict=False
        )
    except msgspec.ValidationError as exc:
        raise ValidationError(
            {"dimension_markups": f'A list of {{"value": …, "markup": …}}: {exc}'}
        ) from exc
    return PassThroughDoc(
        markup=data["markup"],
        feature=data.get("feature") or "",
        dimension=data.get("dimension") or None,
        markups=markups or None,
    )


class TokenPassThroughFormSet(forms.BaseInlineFormSet):
    """The pass-through of a version, checked with its (edited) currency and included
    features as the loader checks them: USD plans only, a feature once, not included."""

    def clean(self) -> None:
        super().clean()
        version = self.instance
        if any(self.errors) or version is None or version.plan_id is None:
            return
        rows = [
            pass_through_doc(form.cleaned_data)
            for form in self.forms
            if form.cleaned_data and not form.cleaned_data.get("DELETE")
        ]
        try:
            plan_check("", plan_document_of(version, token_pass_through=rows))
        except PriceBookError as exc:
            raise _refused(exc) from exc


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
            "fixed_fee",
            "free_value",
            "included_quantity",
            "tier_mode",
            "package_size",
            "dimension",
            "dimension_prices",
        ]

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        percentage = data.get("percentage") if data.get("model") == PriceModel.PERCENTAGE else None
        graduated = data.get("tier_mode") == TierMode.GRADUATED  # tiers of percentages
        if data.get("model") == PriceModel.PERCENTAGE and percentage is None and not graduated:
            raise ValidationError({"percentage": "A percentage price needs its percentage."})
        tier_mode = data.get("tier_mode")
        doc = OutcomePriceDoc(
            type=data.get("outcome_type") or "x",
            unit_price=data.get("unit_price"),
            percentage=percentage,
            floor=data.get("floor"),
            cap=data.get("cap"),
            fixed_fee=data.get("fixed_fee"),
            free_value=data.get("free_value"),
            included=data.get("included_quantity") or 0,
            tier_mode=None if tier_mode in (None, TierMode.NONE) else tier_mode,
            package_size=data.get("package_size"),
            dimension=data.get("dimension") or None,
            prices=dimension_prices_doc(data.get("dimension_prices")),
        )
        try:
            outcome_price_check("", doc, tiers_apart=True)
        except PriceBookError as exc:
            raise _refused(exc) from exc
        return data


def dimension_prices_doc(stored: Any) -> list[DimensionPriceDoc] | None:
    """The admin's JSON of prices by dimension as the document has them (None: empty)."""
    if not stored:
        return None
    try:
        return msgspec.convert(stored, list[DimensionPriceDoc], strict=False)
    except msgspec.ValidationError as exc:
        raise ValidationError(
            {"dimension_prices": f'A list of {{"value": …, "unit_price": …}}: {exc}'}
        ) from exc


class PriceTierFormSet(forms.BaseInlineFormSet):
    def clean(self) -> None:
        super().clean()
        tiers = [
            TierDoc(
                unit_price=form.cleaned_data.get("unit_price"),
                up_to=form.cleaned_data.get("up_to"),
                flat_fee=form.cleaned_data.get("flat_fee"),
                percentage=form.cleaned_data.get("percentage"),
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
