"""Serving routes under /api/v1/: consumers (endpoints and keys come later)."""

from rest_framework.routers import SimpleRouter

from serving.api import views

router = SimpleRouter()  # the /api/v1/ root view is governance's router
router.register("consumers", views.ConsumerViewSet, basename="consumer")

urlpatterns = router.urls
