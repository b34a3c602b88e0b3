"""Root URLs: admin console, management API, schema and docs, health; plain 404 and 500 answers."""

from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from pedigree import health

admin.site.site_header = "Pedigree console"
admin.site.site_title = "Pedigree"
admin.site.index_title = "Catalog, lineage and governance"

urlpatterns = [
    path("", RedirectView.as_view(url="/admin/", permanent=False)),
    path("admin/", admin.site.urls),
    path("api/v1/", include("governance.api.urls")),
    path("api/v1/", include("serving.api.urls")),
    path("api/v1/policies/", include("policies.api.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("api-auth/", include("rest_framework.urls")),
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
]

handler404 = "pedigree.api.page_not_found"
handler500 = "pedigree.api.server_error"
