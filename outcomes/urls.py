from django.urls import path

from outcomes import api

urlpatterns = [
    path("outcomes", api.OutcomeRecordApi.as_view(), name="outcomes"),
    path("outcomes/<str:external_id>", api.OutcomeDetailApi.as_view(), name="outcome"),
]
