from django.urls import path

from billing.statements import api

urlpatterns = [
    path("invoices/<int:invoice_id>/statement", api.StatementApi.as_view(), name="statement"),
    path(
        "invoices/<int:invoice_id>/statement.csv",
        api.StatementCsvApi.as_view(),
        name="statement-csv",
    ),
    path(
        "invoices/<int:invoice_id>/statement.pdf",
        api.StatementPdfApi.as_view(),
        name="statement-pdf",
    ),
    path(
        "customers/<str:external_id>/portal-links",
        api.PortalLinksApi.as_view(),
        name="portal-links",
    ),
]
