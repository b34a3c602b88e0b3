"""Catalog routes under /api/v1/."""

from django.urls import path
from rest_framework.routers import DefaultRouter

from governance.api import lineage_views, pii_views, views

router = DefaultRouter()
router.register("datasets", views.DatasetViewSet, basename="dataset")
router.register("versions", views.AllVersionsViewSet, basename="version")
router.register("lineage/nodes", lineage_views.LineageNodeViewSet, basename="lineage-node")
router.register("lineage/exceptions", lineage_views.QuarantineExceptionViewSet, basename="lineage-exception")

versions = views.DatasetVersionViewSet
transfers = views.DatasetTransferViewSet
_dataset = "datasets/<slug:dataset_name>/versions/"
_version = _dataset + "<int:number>/"

urlpatterns = [
    path("lineage/", lineage_views.LineageIndexView.as_view(), name="lineage-index"),
    *router.urls,
    path(_dataset, versions.as_view({"get": "list", "post": "create"}), name="dataset-version-list"),
    path(_dataset + "register/", versions.as_view({"post": "register"}), name="dataset-version-register"),
    path(_version, versions.as_view({"get": "retrieve"}), name="dataset-version-detail"),
    path(_version + "download/", versions.as_view({"get": "download"}), name="dataset-version-download"),
    path(_version + "governance/", versions.as_view({"post": "governance"}), name="dataset-version-governance"),
    path(_version + "revoke/", versions.as_view({"post": "revoke"}), name="dataset-version-revoke"),
    path(_version + "history/", versions.as_view({"get": "history"}), name="dataset-version-history"),
    path("licences/", views.LicenceListView.as_view(), name="licence-list"),
    path("datasets/<slug:dataset_name>/transfers/", transfers.as_view({"get": "list", "post": "create"}), name="dataset-transfer-list"),
    path("datasets/<slug:dataset_name>/transfers/<int:pk>/", transfers.as_view({"get": "retrieve"}), name="dataset-transfer-detail"),
    path("datasets/<slug:dataset_name>/transfers/<int:pk>/accept/", transfers.as_view({"post": "accept"}), name="dataset-transfer-accept"),
    path("datasets/<slug:dataset_name>/transfers/<int:pk>/decline/", transfers.as_view({"post": "decline"}), name="dataset-transfer-decline"),
    # PII scanning, review and redaction (governance/api/pii_views.py)
    path(_version + "pii/scans/", pii_views.PiiScanListView.as_view(), name="pii-scan-list"),
    path(_version + "pii/scans/<int:scan_id>/", pii_views.PiiScanDetailView.as_view(), name="pii-scan-detail"),
    path(_version + "pii/scans/<int:scan_id>/cancel/", pii_views.PiiScanCancelView.as_view(), name="pii-scan-cancel"),
    path(_version + "pii/report/", pii_views.PiiReportView.as_view(), name="pii-report"),
    path(_version + "pii/reviews/", pii_views.PiiReviewView.as_view(), name="pii-reviews"),
    path(_version + "pii/redact/", pii_views.PiiRedactView.as_view(), name="pii-redact"),
    path(_version + "pii/redactions/", pii_views.PiiRedactionListView.as_view(), name="pii-redaction-list"),
    path(_version + "pii/redactions/<int:redaction_id>/", pii_views.PiiRedactionDetailView.as_view(), name="pii-redaction-detail"),
]
