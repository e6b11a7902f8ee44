"""Alerts on what customers may still spend: credits below an amount, credits exhausted,
a budget reached (each once per customer and billing period) and credits about to expire
(once per grant)."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from alerts.models import Alert, AlertKind, AlertRule
from alerts.services import alerts_evaluate
from billing.credits.services import GrantRequest, grant_create
from billing.limits.models import LimitMode
from billing.limits.services import spend_limit_set
from billing.plans.models import Subscription
from billing.plans.selectors import customer_period
from tests.billing.factories import plan_load
from tests.metering.factories import customer_create

pytestmark = pytest.mark.django_db


def only_rule(kind: str, **terms) -> AlertRule:
    AlertRule.objects.all().delete()
    return AlertRule.objects.create(name=kind, kind=kind, **terms)


def subscribed(external_id: str, base_fee: str = "10"):
    version = plan_load("pro", base_fee=base_fee)
    customer = customer_create(external_id=external_id)
    Subscription.objects.create(
        customer=customer, plan=version.plan, started_at=timezone.now() - timedelta(days=2)
    )
    return customer


def give(customer, amount: str, **terms) -> None:
    grant_create(
        customer=customer,
        request=GrantRequest(
            amount=Decimal(amount),
            currency="USD",
            effective_at=timezone.now() - timedelta(days=2),
            **terms,
        ),
    )


def test_credits_below_an_amount_fire_once_per_period():
    only_rule(AlertKind.CREDITS_BELOW, threshold_amount=Decimal(25))
    low, high = subscribed("low"), customer_create(external_id="high")
    Subscription.objects.create(
        customer=high, plan=low.subscription.plan, started_at=timezone.now() - timedelta(days=2)
    )
    give(low, "30")  # $30 less the $10 base fee billed so far: $20 available
    give(high, "60")

    first, again = alerts_evaluate(), alerts_evaluate()

    assert [alert.subject for alert in first] == ["customer:low"]
    assert again == []
    assert first[0].details["available"] == "20"
    # Once per billing period: the one holding now (the first, partial one since two days
    # ago; on a month's first two days, the month's own).
    running = customer_period(customer=low, moment=timezone.now())
    assert running is not None and first[0].period_start == running[0]


def test_exhausted_credits_fire_and_customers_without_any_do_not():
    only_rule(AlertKind.CREDITS_EXHAUSTED)
    spent = subscribed("spent")
    give(spent, "5")  # less than the $10 billed so far
    customer_create(external_id="postpaid")

    [alert] = alerts_evaluate()

    assert alert.subject == "customer:spent"
    assert "credits exhausted" in alert.message


def test_a_reached_budget_fires():
    only_rule(AlertKind.BUDGET_REACHED)
    customer = subscribed("capped", base_fee="50")
    spend_limit_set(customer=customer, mode=LimitMode.HARD, credits=False, budget=Decimal(50))
    other = customer_create(external_id="roomy")
    Subscription.objects.create(
        customer=other,
        plan=customer.subscription.plan,
        started_at=timezone.now() - timedelta(days=2),
    )
    spend_limit_set(customer=other, mode=LimitMode.HARD, credits=False, budget=Decimal(80))

    [alert] = alerts_evaluate()

    assert alert.subject == "customer:capped"
    assert "budget 50 USD reached" in alert.message


def test_credits_about_to_expire_fire_once_per_grant():
    only_rule(AlertKind.GRANT_EXPIRING, within_days=3)
    customer = subscribed("acme")
    soon = timezone.now() + timedelta(days=2)
    give(customer, "40", external_id="soon", expires_at=soon)
    give(customer, "40", external_id="later", expires_at=timezone.now() + timedelta(days=9))

    first, again = alerts_evaluate(), alerts_evaluate()

    assert [alert.subject for alert in first] == ["grant:acme:soon"]
    assert again == []
    assert Alert.objects.get().period_start == soon
