"""PII scans in the admin console: the report as a readable page, with the
steward's confirm/dismiss buttons per entity type, and cancel.

The page is view-only except for those recorded actions, which call the same
services as the API and ask for a reason. Registered from ``governance.admin``.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from django.contrib import admin, messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from governance.admin_access import DatasetScopedAdminMixin
from governance.models import Dataset, DatasetVersion
from governance.models.pii import PiiEntityReview, PiiReviewDecision, PiiScan
from governance.pii.reviews import do_review_pii_entity
from governance.pii.scans import do_cancel_pii_scan, do_request_pii_scan
from pedigree.admin import ReadOnlyModelAdmin
from pedigree.errors import PedigreeError


@admin.register(PiiScan)
class PiiScanAdmin(DatasetScopedAdminMixin, ReadOnlyModelAdmin):
    """Every PII scan the user may see (its team's, a steward's; auditors and
    admins: all); each one's page is its report."""

    dataset_lookup = "version__dataset"

    list_display = ["id", "version", "status", "outcome_label", "trigger", "progress_label", "found", "requested_at"]
    list_filter = ["status", "trigger", "version__pii_status", "ner_available"]
    search_fields = ["version__dataset__name", "found_entity_types"]
    list_select_related = ["version__dataset"]

    @admin.display(description="outcome")
    def outcome_label(self, scan: PiiScan) -> str:
        return scan.outcome or "—"

    @admin.display(description="progress")
    def progress_label(self, scan: PiiScan) -> str:
        return f"{scan.progress:.0%}"

    @admin.display(description="found")
    def found(self, scan: PiiScan) -> str:
        return ", ".join(scan.found_entity_types) or "—"

    def get_urls(self) -> list[Any]:
        wrap = self.admin_site.admin_view
        return [
            path("<int:pk>/review/", wrap(self.review_view), name="governance_piiscan_review"),
            path("<int:pk>/cancel/", wrap(self.cancel_view), name="governance_piiscan_cancel"),
            path("scan-version/<int:version_pk>/", wrap(self.scan_version_view), name="governance_piiscan_scan_version"),
            *super().get_urls(),
        ]

    def _report_url(self, scan: PiiScan) -> str:
        return reverse("admin:governance_piiscan_change", args=[scan.pk])

    def change_view(self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: Any = None) -> HttpResponse:
        """The scan's report: counts per entity type and field, masked samples, review buttons."""
        scan = get_object_or_404(self.get_queryset(request).select_related("version__dataset", "requested_by"), pk=object_id)
        version = scan.version
        by_type: dict[str, list[Any]] = defaultdict(list)
        for finding in scan.findings.order_by("entity_type", "field"):
            finding.histogram_percent = [  # type: ignore[attr-defined]
                round(100 * n / finding.count) if finding.count else 0 for n in finding.histogram
            ]
            by_type[finding.entity_type].append(finding)
        reviews = {review.entity_type: review for review in PiiEntityReview.objects.filter(version=version).select_related("decided_by")}
        entity_rows = [
            {
                "entity_type": entity,
                "count": sum(f.count for f in findings),
                "records": (scan.totals or {}).get("entities", {}).get(entity, {}).get("records", 0),
                "findings": findings,
                "review": reviews.get(entity),
            }
            for entity, findings in sorted(by_type.items())
        ]
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": f"PII report: {version} (scan #{scan.pk})",
            "scan": scan,
            "version": version,
            "entity_rows": entity_rows,
            "other_reviews": [r for entity, r in sorted(reviews.items()) if entity not in by_type],
            "version_url": reverse("admin:governance_datasetversion_change", args=[version.pk]),
            "other_scans": PiiScan.objects.filter(version=version).exclude(pk=scan.pk).order_by("-requested_at")[:20],
            "can_change": version.dataset.may(request.user, "change"),  # type: ignore[arg-type]
            "decisions": PiiReviewDecision,
        }
        return TemplateResponse(request, "admin/governance/pii/report.html", context)

    def review_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        """Confirm or dismiss one entity type (POST: entity_type, decision, reason)."""
        scan = get_object_or_404(self.get_queryset(request).select_related("version__dataset"), pk=pk)
        if request.method == "POST":
            try:
                do_review_pii_entity(
                    actor=request.user,  # type: ignore[arg-type]
                    version=scan.version,
                    entity_type=request.POST.get("entity_type", ""),
                    decision=request.POST.get("decision", ""),
                    reason=request.POST.get("reason", ""),
                )
            except PedigreeError as error:
                messages.error(request, error.message)
            else:
                messages.success(request, f"{request.POST.get('entity_type')} {request.POST.get('decision')} on {scan.version}.")
        return HttpResponseRedirect(self._report_url(scan))

    def cancel_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        scan = get_object_or_404(self.get_queryset(request).select_related("version__dataset"), pk=pk)
        if request.method == "POST":
            try:
                do_cancel_pii_scan(actor=request.user, scan=scan)  # type: ignore[arg-type]
            except PedigreeError as error:
                messages.error(request, error.message)
            else:
                messages.warning(request, f"Scan #{scan.pk} cancelled.")
        return HttpResponseRedirect(self._report_url(scan))

    def scan_version_view(self, request: HttpRequest, version_pk: int) -> HttpResponse:
        """Start a scan of a version (POST) and show its page."""
        version = get_object_or_404(
            DatasetVersion.objects.select_related("dataset").filter(
                dataset__in=Dataset.objects.restrict(request.user, "view_details")  # type: ignore[arg-type]
            ),
            pk=version_pk,
        )
        if request.method != "POST":
            return HttpResponseRedirect(reverse("admin:governance_datasetversion_change", args=[version.pk]))
        try:
            scan = do_request_pii_scan(actor=request.user, version=version)  # type: ignore[arg-type]
        except PedigreeError as error:
            messages.error(request, error.message)
            return HttpResponseRedirect(reverse("admin:governance_datasetversion_change", args=[version.pk]))
        messages.success(request, format_html("PII scan #{} of {} queued.", scan.pk, version))
        return HttpResponseRedirect(self._report_url(scan))
