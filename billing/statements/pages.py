"""URLs of the hosted statement and the customer portal (outside the API: pages for
people, behind their signed links)."""

from django.urls import path

from billing.statements import views

urlpatterns = [
    path("<str:token>", views.statement_page, name="statement-page"),
    path("<str:token>/statement.csv", views.statement_page_csv, name="statement-page-csv"),
    path("<str:token>/statement.pdf", views.statement_page_pdf, name="statement-page-pdf"),
]
