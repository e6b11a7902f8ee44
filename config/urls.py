from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from api.health import HealthApi
from billing.analytics import views as analytics_views
from billing.statements import views as statements_views
from common.metrics import metrics_view

# The admin is payback's, by name.
admin.site.site_header = "payback"
admin.site.site_title = "payback"
admin.site.index_title = "Operations"

handler404 = "api.errors.handler404"
handler500 = "api.errors.handler500"

v1 = [
    path("health", HealthApi.as_view(), name="health"),
    path("schema", SpectacularAPIView.as_view(), name="schema"),
    path("docs", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
    path("", include("metering.urls")),
    path("", include("outcomes.urls")),
    path("", include("billing.plans.urls")),
    path("", include("billing.credits.urls")),
    path("", include("billing.invoicing.urls")),
    path("", include("billing.analytics.urls")),
    path("", include("billing.limits.urls")),
    path("", include("billing.statements.urls")),
    path("", include("billing.stripe_sync.urls")),
]

urlpatterns = [
    path("v1/", include(v1)),
    # The unit-economics dashboard: admin views, for staff only (admin_view checks).
    path(
        "admin/dashboard/",
        admin.site.admin_view(analytics_views.dashboard_view),
        name="admin-dashboard",
    ),
    path(
        "admin/dashboard/margins.csv",
        admin.site.admin_view(analytics_views.dashboard_margins_csv),
        name="admin-dashboard-margins-csv",
    ),
    path(
        "admin/dashboard/customers/<str:external_id>/",
        admin.site.admin_view(analytics_views.customer_view),
        name="admin-customer-economics",
    ),
    # Staff who may read the unit economics land on the dashboard; `?all` is the admin's
    # own home page.
    path("admin/", admin.site.admin_view(analytics_views.admin_home), name="admin-home"),
    path("admin/", admin.site.urls),
    # An invoice's statement for the customer, behind a signed link (no login).
    path("statements/", include("billing.statements.pages")),
    path("portal/<str:token>", statements_views.portal_page, name="portal-page"),
    path("metrics", metrics_view, name="metrics"),
]
