from django.urls import path

from billing.analytics import api

urlpatterns = [
    path("analytics/margins", api.MarginsApi.as_view(), name="analytics-margins"),
    path("analytics/premium", api.PremiumBreakEvenApi.as_view(), name="analytics-premium"),
    path("analytics/savings", api.SavingsApi.as_view(), name="analytics-savings"),
]
