from django.urls import path

from billing.credits import api

urlpatterns = [
    path(
        "customers/<str:external_id>/credits",
        api.CustomerCreditsApi.as_view(),
        name="customer-credits",
    ),
    path(
        "customers/<str:external_id>/credits/grants",
        api.CustomerGrantsApi.as_view(),
        name="customer-credit-grants",
    ),
    path(
        "customers/<str:external_id>/credits/grants/<str:grant_id>/void",
        api.GrantVoidApi.as_view(),
        name="customer-credit-grant-void",
    ),
    path(
        "customers/<str:external_id>/credits/top-ups",
        api.CustomerTopUpsApi.as_view(),
        name="customer-credit-top-ups",
    ),
    path(
        "customers/<str:external_id>/credits/auto-top-up",
        api.AutoTopUpApi.as_view(),
        name="customer-credit-auto-top-up",
    ),
    path("credits/liability", api.CreditLiabilityApi.as_view(), name="credit-liability"),
    path(
        "customers/<str:external_id>/credits/ledger",
        api.CustomerLedgerApi.as_view(),
        name="customer-credit-ledger",
    ),
]
