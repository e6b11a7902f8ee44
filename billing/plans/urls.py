from django.urls import path

from billing.plans import api

urlpatterns = [
    path("customers/<str:external_id>", api.CustomerDetailApi.as_view(), name="customer"),
    path("plans", api.PlanListApi.as_view(), name="plans"),
    path("plans/<str:code>", api.PlanDetailApi.as_view(), name="plan"),
    path("plans/<str:code>/versions", api.PlanVersionsApi.as_view(), name="plan-versions"),
]
