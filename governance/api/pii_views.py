"""PII API views: start a scan, follow its progress, read its report, review
entity types, make a redacted version. Parse, call one service, serialize."""

from __future__ import annotations

from typing import Any

from django.db.models import Prefetch, QuerySet
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from governance.access import ensure_details_visible
from governance.api import pii_serializers as s
from governance.models import Dataset, DatasetVersion
from governance.models.pii import PiiEntityReview, PiiFinding, PiiRedaction, PiiScan, PiiScanStatus
from governance.pii.redactions import do_request_redaction
from governance.pii.reviews import do_review_pii_entity
from governance.pii.scans import do_cancel_pii_scan, do_request_pii_scan, scan_config


def _version(request: Request, dataset_name: str, number: int) -> DatasetVersion:
    """The version, if ``request.user`` may see its PII details (scans, reports with
    masked samples, reviews, redactions): the owning team, the steward, auditors
    and admins (``governance.access``). Others get a 403 naming who may."""
    datasets = Dataset.objects.restrict(request.user, "view")
    version = get_object_or_404(
        DatasetVersion.objects.select_related("dataset__owner_group", "dataset__steward").filter(dataset__in=datasets),
        dataset__name=dataset_name,
        number=number,
    )
    if request.method in ("GET", "HEAD", "OPTIONS"):  # writes: the services refuse outsiders themselves
        ensure_details_visible(request.user, version.dataset, "PII scans and reports")
    return version


def _scans(version: DatasetVersion) -> QuerySet[PiiScan]:
    return (
        PiiScan.objects.filter(version=version).select_related("version__dataset", "requested_by")
        .prefetch_related(Prefetch("findings", queryset=PiiFinding.objects.order_by("entity_type", "field")))
        .order_by("-requested_at", "-pk")
    )


class PiiScanListView(APIView):
    """A version's PII scans (newest first); POST starts one on a Celery worker."""

    @extend_schema(responses=s.PiiScanSerializer(many=True))
    def get(self, request: Request, dataset_name: str, number: int) -> Response:
        version = _version(request, dataset_name, number)
        return Response(s.PiiScanSerializer(_scans(version), many=True).data)

    @extend_schema(request=s.PiiScanRequestSerializer, responses={202: s.PiiScanSerializer})
    def post(self, request: Request, dataset_name: str, number: int) -> Response:
        version = _version(request, dataset_name, number)
        body = s.PiiScanRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        config = scan_config(
            score_threshold=body.validated_data.get("score_threshold"), entities=body.validated_data.get("entities")
        )
        scan = do_request_pii_scan(actor=request.user, version=version, config=config)
        return Response(s.PiiScanSerializer(_scans(version).get(pk=scan.pk)).data, status=status.HTTP_202_ACCEPTED)


class PiiScanDetailView(APIView):
    """One scan: status and progress (records done of total), and its report once completed."""

    @extend_schema(responses=s.PiiScanSerializer)
    def get(self, request: Request, dataset_name: str, number: int, scan_id: int) -> Response:
        version = _version(request, dataset_name, number)
        scan = get_object_or_404(_scans(version), pk=scan_id)
        return Response(s.PiiScanSerializer(scan).data)


class PiiScanCancelView(APIView):
    """Cancel a queued or running scan (a running one stops at its next checkpoint)."""

    @extend_schema(request=None, responses=s.PiiScanSerializer)
    def post(self, request: Request, dataset_name: str, number: int, scan_id: int) -> Response:
        version = _version(request, dataset_name, number)
        scan = get_object_or_404(PiiScan.objects.filter(version=version), pk=scan_id)
        scan = do_cancel_pii_scan(actor=request.user, scan=scan)
        return Response(s.PiiScanSerializer(_scans(version).get(pk=scan.pk)).data)


class PiiReportView(APIView):
    """The version's PII report: its latest completed scan, with the review so far."""

    @extend_schema(responses=s.PiiScanSerializer)
    def get(self, request: Request, dataset_name: str, number: int) -> Response:
        version = _version(request, dataset_name, number)
        scan = _scans(version).filter(status=PiiScanStatus.COMPLETED).order_by("-finished_at", "-pk").first()
        if scan is None:
            active = PiiScan.objects.filter(version=version).filter(status__in=["queued", "running"]).first()
            hint = f" (scan #{active.pk} is {active.status})" if active else "; start a scan"
            return Response(
                {"error": {"code": "not_found", "message": f"{version} has no completed PII scan{hint}"}},
                status=status.HTTP_404_NOT_FOUND,
            )
        body: dict[str, Any] = dict(s.PiiScanSerializer(scan).data)
        body["pii_status"] = version.pii_status
        body["pii_types"] = version.pii_types
        body["reviews"] = s.PiiEntityReviewSerializer(PiiEntityReview.objects.filter(version=version).select_related("decided_by"), many=True).data
        redaction = PiiRedaction.objects.filter(result=version, status="completed").select_related("source__dataset").first()
        body["redacted_from"] = (
            {"version": redaction.source.label, "operators": redaction.operators,
             "residual_pii": scan.found_entity_types}
            if redaction else None
        )
        return Response(body)


class PiiReviewView(APIView):
    """Confirm or dismiss one entity type found in the version, with a reason."""

    @extend_schema(responses=s.PiiEntityReviewSerializer(many=True))
    def get(self, request: Request, dataset_name: str, number: int) -> Response:
        version = _version(request, dataset_name, number)
        return Response(s.PiiEntityReviewSerializer(PiiEntityReview.objects.filter(version=version).select_related("decided_by"), many=True).data)

    @extend_schema(request=s.PiiReviewRequestSerializer, responses=s.PiiEntityReviewSerializer)
    def post(self, request: Request, dataset_name: str, number: int) -> Response:
        version = _version(request, dataset_name, number)
        body = s.PiiReviewRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        review = do_review_pii_entity(actor=request.user, version=version, **body.validated_data)
        data = dict(s.PiiEntityReviewSerializer(review).data)
        version.refresh_from_db()
        data["pii_status"], data["pii_types"] = version.pii_status, version.pii_types
        return Response(data)


class PiiRedactView(APIView):
    """Make a redacted copy of the version: queued for a worker; the new version
    is derived from this one and scanned again."""

    @extend_schema(request=s.PiiRedactRequestSerializer, responses={202: s.PiiRedactionSerializer})
    def post(self, request: Request, dataset_name: str, number: int) -> Response:
        version = _version(request, dataset_name, number)
        body = s.PiiRedactRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        redaction = do_request_redaction(
            actor=request.user, version=version, operators=body.validated_data["operators"], reason=body.validated_data["reason"]
        )
        redaction = PiiRedaction.objects.select_related("source__dataset", "result__dataset", "requested_by").get(pk=redaction.pk)
        return Response(s.PiiRedactionSerializer(redaction).data, status=status.HTTP_202_ACCEPTED)


class PiiRedactionListView(APIView):
    """Redactions made from this version: status, operators and the redacted version."""

    @extend_schema(responses=s.PiiRedactionSerializer(many=True))
    def get(self, request: Request, dataset_name: str, number: int) -> Response:
        version = _version(request, dataset_name, number)
        redactions = PiiRedaction.objects.filter(source=version).select_related("source__dataset", "result__dataset", "requested_by")
        return Response(s.PiiRedactionSerializer(redactions, many=True).data)


class PiiRedactionDetailView(APIView):
    """One redaction: queued, running, completed (with the new version) or failed (with the reason)."""

    @extend_schema(responses=s.PiiRedactionSerializer)
    def get(self, request: Request, dataset_name: str, number: int, redaction_id: int) -> Response:
        version = _version(request, dataset_name, number)
        redaction = get_object_or_404(
            PiiRedaction.objects.filter(source=version).select_related("source__dataset", "result__dataset", "requested_by"),
            pk=redaction_id,
        )
        return Response(s.PiiRedactionSerializer(redaction).data)
