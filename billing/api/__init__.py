"""HTTP views of the billing app, one module per area."""

from billing.api.analytics import MarginsApi, PremiumBreakEvenApi, SavingsApi
from billing.api.customers import (
    CustomerDetailApi,
    CustomerInvoicesApi,
    CustomerUsageApi,
    InvoiceDetailApi,
    OutcomeReverseApi,
)
from billing.api.fx import FxRatesApi
from billing.api.plans import PlanDetailApi, PlanListApi, PlanVersionsApi
from billing.api.webhooks import StripeWebhookApi

__all__ = [
    "CustomerDetailApi",
    "CustomerInvoicesApi",
    "CustomerUsageApi",
    "FxRatesApi",
    "InvoiceDetailApi",
    "MarginsApi",
    "OutcomeReverseApi",
    "PlanDetailApi",
    "PlanListApi",
    "PlanVersionsApi",
    "PremiumBreakEvenApi",
    "SavingsApi",
    "StripeWebhookApi",
]
