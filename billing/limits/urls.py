from django.urls import path

from billing.limits import api

urlpatterns = [
    path("customers/<str:external_id>/authorize", api.AuthorizeApi.as_view(), name="authorize"),
    path(
        "customers/<str:external_id>/available",
        api.CustomerAvailableApi.as_view(),
        name="customer-available",
    ),
    path(
        "customers/<str:external_id>/spend-limit",
        api.SpendLimitApi.as_view(),
        name="customer-spend-limit",
    ),
    path("reservations/<str:reservation_id>", api.ReservationApi.as_view(), name="reservation"),
    path(
        "reservations/<str:reservation_id>/settle",
        api.ReservationSettleApi.as_view(),
        name="reservation-settle",
    ),
    path(
        "reservations/<str:reservation_id>/release",
        api.ReservationReleaseApi.as_view(),
        name="reservation-release",
    ),
]
