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
        "customers/<str:external_id>/credits/ledger",
        api.CustomerLedgerApi.as_view(),
        name="customer-credit-ledger",
    ),
]
