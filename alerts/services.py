"""Evaluating the alert rules and delivering what fires.

A rule is evaluated over the calendar month (UTC) so far, from the same reports the API
answers (billing/analytics/selectors/margins.py, premium.py). A firing is stored once per rule,
subject and month (the unique constraint on Alert is the guard, so concurrent or repeated
evaluations fire nothing twice); each new alert gets one delivery per enabled webhook
endpoint, sent by a task after the commit.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import urllib3
from django.db import transaction
from django.utils import timezone

from alerts.models import (
    Alert,
    AlertDelivery,
    AlertKind,
    AlertRule,
    DeliveryState,
    WebhookEndpoint,
)
from alerts.webhooks import UnsafeUrl, webhook_post
from billing.analytics.selectors.margins import MarginFilters, MarginReport, margins_report
from billing.analytics.selectors.premium import premium_break_even
from billing.credits.selectors import grants_expiring
from billing.invoicing.selectors.rating import periods_waiting_for_rates
from billing.limits.selectors import Available, NoPlan, available, customers_spending
from common.queue import enqueue_on_commit

logger = logging.getLogger(__name__)

DELIVER_ALERT = "alerts.tasks.deliver_alert"  # by name: services import no task


def month_of(moment: datetime) -> tuple[datetime, datetime]:
    moment = moment.astimezone(UTC)
    start = datetime(moment.year, moment.month, 1, tzinfo=UTC)
    return start, datetime(start.year + start.month // 12, start.month % 12 + 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Finding:
    rule: AlertRule
    subject: str
    message: str
    details: dict[str, Any]
    # Once per subject in this period; None: the calendar month of the evaluation.
    period_start: datetime | None = None


def _text(value: Decimal | None) -> str | None:
    return None if value is None else f"{value.normalize():f}"


class _Reports:
    """The reports the rules read, each computed once per evaluation."""

    def __init__(self, now: datetime) -> None:
        self.now = now
        self.start, self.end = month_of(now)
        self._margins: dict[tuple[str, datetime], MarginReport] = {}
        self._spending: list[Available] | None = None

    def spending(self) -> list[Available]:
        """What each customer with credits or a spend limit has available now."""
        if self._spending is None:
            self._spending = []
            for customer in customers_spending():
                try:
                    self._spending.append(available(customer=customer, now=self.now))
                except NoPlan:
                    continue  # no period to spend in
        return self._spending

    def margins(self, group_by: str, *, previous_month: bool = False) -> MarginReport:
        """The margin report of this month so far, or of the whole month before."""
        start, end = (
            month_of(self.start - timedelta(days=1))
            if previous_month
            else (
                self.start,
                self.end,
            )
        )
        if (group_by, start) not in self._margins:
            self._margins[(group_by, start)] = margins_report(
                start=start, end=end, group_by=group_by, filters=MarginFilters(), now=self.now
            )
        return self._margins[(group_by, start)]


def _margin_below(rule: AlertRule, reports: _Reports) -> list[Finding]:
    report = reports.margins(rule.scope)
    findings = []
    for row in report.rows:
        if not row.key or row.margin is None:
            continue  # calls without an outcome type; a margin a missing rate hides
        percent = row.margin_percent
        losing = percent < rule.threshold_percent if percent is not None else row.margin < 0
        if not losing:
            continue
        share = f"{_text(percent)} %" if percent is not None else "no revenue"
        findings.append(
            Finding(
                rule,
                f"{rule.scope}:{row.key}",
                f"{rule.scope.replace('_', ' ')} {row.key}: margin {_text(row.margin)} "
                f"{report.currency} ({share}) is below {_text(rule.threshold_percent)} %",
                {
                    "revenue": _text(row.revenue),
                    "inference_cost": _text(row.inference_cost),
                    "margin": _text(row.margin),
                    "margin_percent": _text(percent),
                    "currency": report.currency,
                },
            )
        )
    return findings


def _cost_per_success_up(rule: AlertRule, reports: _Reports) -> list[Finding]:
    now = reports.margins(rule.scope)
    before = {row.key: row for row in reports.margins(rule.scope, previous_month=True).rows}
    findings = []
    for row in now.rows:
        previous = before.get(row.key)
        if not row.key or previous is None:
            continue
        cost, earlier = row.cost_per_success, previous.cost_per_success
        if cost is None or not earlier:
            continue
        rise = ((cost - earlier) / earlier * 100).quantize(Decimal("0.01"))
        if rise <= rule.threshold_percent:
            continue
        findings.append(
            Finding(
                rule,
                f"{rule.scope}:{row.key}",
                f"{rule.scope.replace('_', ' ')} {row.key}: cost per success "
                f"{_text(cost)} {now.currency}, up {_text(rise)} % on last month "
                f"({_text(earlier)})",
                {
                    "cost_per_success": _text(cost),
                    "previous_cost_per_success": _text(earlier),
                    "rise_percent": _text(rise),
                    "currency": now.currency,
                },
            )
        )
    return findings


def _unpriced_calls(rule: AlertRule, reports: _Reports) -> list[Finding]:
    return [
        Finding(
            rule,
            f"model:{row.key}",
            f"{row.unpriced_calls} calls of {row.key} have no price: add a price override",
            {"model": row.key, "unpriced_calls": row.unpriced_calls},
        )
        for row in reports.margins("model").rows
        if row.unpriced_calls
    ]


def _premium_below_break_even(rule: AlertRule, reports: _Reports) -> list[Finding]:
    return [
        Finding(
            rule,
            f"plan:{report.plan}",
            f"premium tier of {report.plan}: its {report.seats} seats cost more AI than their "
            f"fees (tier margin {_text(report.tier_margin_percent)} %); "
            f"{report.seats_over_fee} seats exceed the fee",
            {
                "seats": report.seats,
                "seats_over_fee": report.seats_over_fee,
                "tier_margin_percent": _text(report.tier_margin_percent),
                "fair_use_cap_usd": _text(report.fair_use_cap),
            },
        )
        for report in premium_break_even(start=reports.start, end=reports.end)
        if report.below_break_even
    ]


def _missing_fx_rate(rule: AlertRule, reports: _Reports) -> list[Finding]:
    # Periods due for half an hour and still open: beat closes due periods every few
    # minutes, so these wait for something, and here for a rate.
    waiting = periods_waiting_for_rates(as_of=reports.now - timedelta(minutes=30))
    return [
        Finding(
            rule,
            f"fx_rate:{rate.currency}:{rate.day.isoformat()}",
            f"the {rate.currency} rate of {rate.day.isoformat()} is missing: the closes of "
            f"{', '.join(sorted(customers))} wait for it (add it in the admin's FX rates, "
            "POST /v1/fx-rates or manage.py load_fx_rates)",
            {
                "currency": rate.currency,
                "day": rate.day.isoformat(),
                "customers": sorted(customers),
            },
        )
        for rate, customers in sorted(waiting.items())
    ]


def _credits_below(rule: AlertRule, reports: _Reports) -> list[Finding]:
    return [
        _spending_finding(
            rule,
            spent,
            f"credits available {_text(spent.amount)} {spent.currency}, below "
            f"{_text(rule.threshold_amount)}",
        )
        for spent in reports.spending()
        if spent.limit.credits and spent.amount < rule.threshold_amount
    ]


def _credits_exhausted(rule: AlertRule, reports: _Reports) -> list[Finding]:
    return [
        _spending_finding(
            rule, spent, f"credits exhausted: {_text(spent.amount)} {spent.currency} available"
        )
        for spent in reports.spending()
        if spent.limit.credits and spent.amount <= 0
    ]


def _budget_reached(rule: AlertRule, reports: _Reports) -> list[Finding]:
    findings = []
    for spent in reports.spending():
        reached = []
        if spent.budget_left is not None and spent.budget_left <= 0:
            reached.append(f"budget {_text(spent.limit.budget)} {spent.currency}")
        if spent.limit.cost_budget is not None and spent.cost >= spent.limit.cost_budget:
            reached.append(f"cost budget {_text(spent.limit.cost_budget)} USD")
        if reached:
            findings.append(_spending_finding(rule, spent, " and ".join(reached) + " reached"))
    return findings


def _spending_finding(rule: AlertRule, spent: Available, message: str) -> Finding:
    customer = spent.limit.customer.external_id
    return Finding(
        rule,
        f"customer:{customer}",
        f"customer {customer}: {message} (period from {spent.period_start:%Y-%m-%d})",
        {
            "customer": customer,
            "currency": spent.currency,
            "available": _text(spent.amount),
            "billed": _text(spent.billed),
            "reserved": _text(spent.reserved),
            "budget_left": _text(spent.budget_left),
            "cost": _text(spent.cost),
        },
        period_start=spent.period_start,
    )


def _grant_expiring(rule: AlertRule, reports: _Reports) -> list[Finding]:
    return [
        Finding(
            rule,
            f"grant:{grant.customer.external_id}:{grant.external_id}",
            f"customer {grant.customer.external_id}: {_text(grant.balance)} {grant.currency} "
            f"of credits expire at {grant.expires_at:%Y-%m-%d %H:%M} UTC",
            {
                "customer": grant.customer.external_id,
                "grant": grant.external_id,
                "balance": _text(grant.balance),
                "currency": grant.currency,
                "expires_at": grant.expires_at.isoformat(),
            },
            period_start=grant.expires_at,
        )
        for grant in grants_expiring(
            now=reports.now, until=reports.now + timedelta(days=rule.within_days)
        )
    ]


def _dispute_rate(rule: AlertRule, reports: _Reports) -> list[Finding]:
    """Are we charging for real outcomes? An outcome type whose successes this month are
    disputed more often than the threshold (percent)."""
    findings = []
    for row in reports.margins("outcome_type").rows:
        rate = row.dispute_rate_percent
        if not row.key or rate is None or rate <= rule.threshold_percent:
            continue
        findings.append(
            Finding(
                rule,
                f"outcome_type:{row.key}",
                f"{row.disputed} of the {row.key} outcomes that succeeded this month are "
                f"disputed ({_text(rate)} %, above {_text(rule.threshold_percent)} %)",
                {
                    "outcome_type": row.key,
                    "disputed": row.disputed,
                    "disputes_accepted": row.disputes_accepted,
                    "dispute_rate_percent": _text(rate),
                },
            )
        )
    return findings


_EVALUATORS = {
    AlertKind.MARGIN_BELOW: _margin_below,
    AlertKind.COST_PER_SUCCESS_UP: _cost_per_success_up,
    AlertKind.UNPRICED_CALLS: _unpriced_calls,
    AlertKind.PREMIUM_BELOW_BREAK_EVEN: _premium_below_break_even,
    AlertKind.MISSING_FX_RATE: _missing_fx_rate,
    AlertKind.CREDITS_BELOW: _credits_below,
    AlertKind.CREDITS_EXHAUSTED: _credits_exhausted,
    AlertKind.BUDGET_REACHED: _budget_reached,
    AlertKind.GRANT_EXPIRING: _grant_expiring,
    AlertKind.DISPUTE_RATE: _dispute_rate,
}


def alerts_evaluate(*, now: datetime | None = None) -> list[Alert]:
    """Evaluate every enabled rule over the month of `now`; store and send what fired for
    the first time this month. Returns the new alerts."""
    reports = _Reports(now or timezone.now())
    findings = [
        finding
        for rule in AlertRule.objects.filter(enabled=True)
        for finding in _EVALUATORS[AlertKind(rule.kind)](rule, reports)
    ]
    endpoints = list(WebhookEndpoint.objects.filter(enabled=True))
    created = []
    for finding in findings:
        with transaction.atomic():
            alert, new = Alert.objects.get_or_create(
                rule=finding.rule,
                subject=finding.subject,
                period_start=finding.period_start or reports.start,
                defaults={"message": finding.message, "details": finding.details},
            )
            if not new:
                continue
            logger.warning("alert %s: %s", finding.rule.name, finding.message)
            deliveries = AlertDelivery.objects.bulk_create(
                AlertDelivery(alert=alert, endpoint=endpoint) for endpoint in endpoints
            )
            for delivery in deliveries:
                enqueue_on_commit(DELIVER_ALERT, delivery.pk)
            created.append(alert)
    return created


def alert_payload(alert: Alert) -> bytes:
    """The JSON body posted for an alert (compact, keys sorted: what is signed)."""
    return json.dumps(
        {
            "id": alert.pk,
            "rule": alert.rule.name,
            "kind": alert.rule.kind,
            "subject": alert.subject,
            "period_start": alert.period_start.isoformat(),
            "message": alert.message,
            "details": alert.details,
            "created_at": alert.created_at.isoformat(),
        },
        separators=(",", ":"),
        sort_keys=True,
    ).encode()


def alert_deliver(*, delivery_id: int, last_attempt: bool) -> DeliveryState:
    """Send one delivery; its state after: delivered, failed (refused, or out of
    attempts) or still pending (to be tried again). A delivered one is not sent again."""
    delivery = AlertDelivery.objects.select_related("alert__rule", "endpoint").get(pk=delivery_id)
    if delivery.state != DeliveryState.PENDING:
        return DeliveryState(delivery.state)
    delivery.attempts += 1
    try:
        status = webhook_post(
            url=delivery.endpoint.url,
            secret=delivery.endpoint.secret,
            body=alert_payload(delivery.alert),
            delivery_id=delivery.pk,
        )
    except UnsafeUrl as refused:
        # Not worth a retry: the address will not become public by waiting.
        delivery.state, delivery.last_error = DeliveryState.FAILED, f"refused: {refused}"
    except (urllib3.exceptions.HTTPError, OSError) as failed:
        delivery.last_error = f"network: {failed}"
    else:
        if 200 <= status < 300:
            delivery.state, delivery.delivered_at = DeliveryState.DELIVERED, timezone.now()
            delivery.last_error = ""
        else:
            delivery.last_error = f"HTTP {status}"
    if delivery.state == DeliveryState.PENDING and last_attempt:
        delivery.state = DeliveryState.FAILED
        logger.error("alert delivery %s failed: %s", delivery.pk, delivery.last_error)
    delivery.save(update_fields=["state", "attempts", "last_error", "delivered_at"])
    return DeliveryState(delivery.state)


def webhook_endpoint_create(*, url: str) -> WebhookEndpoint:
    """An endpoint for `url`, checked first (UnsafeUrl if it reaches a private address)."""
    endpoint = WebhookEndpoint(url=url)
    endpoint.full_clean()
    endpoint.save()
    return endpoint
