"""HTTP views of the billing app, one module per area."""

from billing.api.analytics import MarginsApi, PremiumBreakEvenApi, SavingsApi
from billing.api.customers import (
    CustomerDetailApi,
    CustomerInvoicesApi,
    CustomerUsageApi,
    InvoiceDetailApi,
    OutcomeReverseApi,
    PlanListApi,
)
from billing.api.webhooks import StripeWebhookApi

__all__ = [
    "CustomerDetailApi",
    "CustomerInvoicesApi",
    "CustomerUsageApi",
    "InvoiceDetailApi",
    "MarginsApi",
    "OutcomeReverseApi",
    "PlanListApi",
    "PremiumBreakEvenApi",
    "SavingsApi",
    "StripeWebhookApi",
]
