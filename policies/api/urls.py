"""Policy routes, mounted under /api/v1/policies/."""

from django.urls import path
from rest_framework.routers import SimpleRouter

from policies.api import views

router = SimpleRouter()
router.register("decisions", views.PolicyDecisionViewSet, basename="policy-decision")

urlpatterns = [
    path("", views.PolicyStatusView.as_view(), name="policy-status"),
    path("reload/", views.PolicyReloadView.as_view(), name="policy-reload"),
    path("decide/", views.DecideView.as_view(), name="policy-decide"),
    path("decide/batch/", views.DecideBatchView.as_view(), name="policy-decide-batch"),
    path("simulate/invokers/", views.EndpointInvokersView.as_view(), name="policy-simulate-invokers"),
    path("simulate/endpoints/", views.ConsumerEndpointsView.as_view(), name="policy-simulate-endpoints"),
    path("simulate/change/", views.PolicyChangeView.as_view(), name="policy-simulate-change"),
    *router.urls,
]
