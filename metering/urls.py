from django.urls import path

from metering import api

# Customers and their usage are served by billing/plans/urls.py and
# billing/invoicing/urls.py: their answers include the plan and the invoice preview,
# which metering may not read.
urlpatterns = [
    path("events", api.EventIngestApi.as_view(), name="events"),
    path("price-overrides", api.PriceOverridesApi.as_view(), name="price-overrides"),
]
