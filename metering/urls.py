from django.urls import path

from metering import api

urlpatterns = [
    path("events", api.EventIngestApi.as_view(), name="events"),
    path("customers/<str:external_id>", api.CustomerDetailApi.as_view(), name="customer"),
    path(
        "customers/<str:external_id>/usage", api.CustomerUsageApi.as_view(), name="customer-usage"
    ),
]
