from django.urls import path

from outcomes import api

urlpatterns = [
    path("outcomes", api.OutcomeRecordApi.as_view(), name="outcomes"),
    path("outcomes/<str:external_id>", api.OutcomeDetailApi.as_view(), name="outcome"),
    path(
        "outcomes/<str:external_id>/reverse",
        api.OutcomeReverseApi.as_view(),
        name="outcome-reverse",
    ),
    path(
        "outcomes/<str:external_id>/disputes",
        api.OutcomeDisputesApi.as_view(),
        name="outcome-disputes",
    ),
]
