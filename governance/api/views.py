"""Catalog API views: parse, call one service, serialize."""

from __future__ import annotations

from typing import Any

from django.db.models import Count, Max, Q, QuerySet
from django.http import FileResponse, HttpRequest
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.parsers import BaseParser, FormParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from governance import services
from governance.access import ensure_details_visible, may_see_details
from governance.api import serializers as s
from governance.filtersets import DatasetFilterSet, DatasetVersionFilterSet
from governance.licences import all_licences
from governance.lineage.status import with_lineage_status
from governance.models import AuditEvent, Dataset, DatasetTransfer, DatasetVersion
from pedigree.errors import InvalidInput, NotFound
from pedigree.parsers import DepthLimitedJSONParser


class RawStreamParser(BaseParser):
    """Accepts any body as a raw upload; the view reads ``request.stream`` itself."""

    media_type = "*/*"

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        return {}


class DatasetViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    viewsets.GenericViewSet,
):
    """Datasets: any signed-in user reads; owners and stewards change."""

    lookup_field = "name"
    lookup_value_regex = r"[-a-zA-Z0-9_]+"
    filterset_class = DatasetFilterSet
    search_fields = ["name", "title", "description", "domain"]
    ordering_fields = ["name", "created_at", "updated_at"]

    def get_queryset(self) -> QuerySet[Dataset]:
        return (
            Dataset.objects.restrict(self.request.user, "view")
            .select_related("owner_group", "steward")
            .annotate(version_count=Count("versions"), latest_number=Max("versions__number"))
            .order_by("name")
        )

    def get_serializer_class(self) -> type[s.DatasetSerializer]:
        if self.action in {"update", "partial_update"}:
            return s.DatasetUpdateSerializer
        return s.DatasetSerializer

    def perform_create(self, serializer: Any) -> None:
        serializer.instance = services.do_create_dataset(actor=self.request.user, **serializer.validated_data)

    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        self.perform_create(serializer)
        assert serializer.instance is not None
        dataset = self.get_queryset().get(pk=serializer.instance.pk)
        return Response(self.get_serializer(dataset).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        description=(
            "Change descriptive fields (owning team, steward, admins). Owner group and steward "
            "are governance: admins change them here with a `reason`; anyone else requests a "
            "transfer (`transfers/`) that the receiving team accepts."
        )
    )
    def partial_update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        kwargs["partial"] = True
        return self.update(request, *args, **kwargs)

    def update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        dataset = self.get_object()
        serializer = self.get_serializer(dataset, data=request.data, partial=kwargs.get("partial", False))
        serializer.is_valid(raise_exception=True)
        services.do_update_dataset(
            actor=request.user,
            dataset=dataset,
            changes=dict(serializer.validated_data),
            reason=str(request.data.get("reason", "")) if hasattr(request.data, "get") else "",
        )
        return Response(self.get_serializer(self.get_queryset().get(pk=dataset.pk)).data)


def _version_queryset(user: Any) -> QuerySet[DatasetVersion]:
    versions = DatasetVersion.objects.filter(dataset__in=Dataset.objects.restrict(user, "view")).select_related(
        "dataset", "created_by", "status_changed_by", "derived_from__dataset"
    )
    return with_lineage_status(versions)  # the effective status, in the same query


class DatasetVersionViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    """Versions of one dataset, and the governed actions on each."""

    serializer_class = s.DatasetVersionSerializer
    filterset_class = DatasetVersionFilterSet
    ordering_fields = ["number", "created_at", "size_bytes"]
    parser_classes = [DepthLimitedJSONParser, MultiPartParser, FormParser, RawStreamParser]

    def get_dataset(self) -> Dataset:
        return get_object_or_404(Dataset.objects.restrict(self.request.user, "view"), name=self.kwargs["dataset_name"])

    def get_queryset(self) -> QuerySet[DatasetVersion]:
        return _version_queryset(self.request.user).filter(dataset__name=self.kwargs["dataset_name"]).order_by("-number")

    def get_version(self) -> DatasetVersion:
        return get_object_or_404(self.get_queryset(), number=self.kwargs["number"])

    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        self.get_dataset()  # 404 for an unknown dataset rather than an empty list
        return super().list(request, *args, **kwargs)

    def retrieve(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return Response(self.get_serializer(self.get_version()).data)

    @extend_schema(
        request={
            "multipart/form-data": s.UploadOptionsSerializer,
            "application/octet-stream": OpenApiTypes.BINARY,
        },
        parameters=[
            OpenApiParameter("licence", str, description="With a raw body: the licence (SPDX id)."),
            OpenApiParameter("filename", str, description="With a raw body: the file's name (sets the format)."),
        ],
        responses={200: s.DatasetVersionSerializer, 201: s.DatasetVersionSerializer},
        description=(
            "Upload a new version. Send multipart/form-data with a `file` part and the governance "
            "fields, or the raw bytes as the body with the fields as query parameters. The same bytes "
            "again return the existing version with 200."
        ),
    )
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        dataset = self.get_dataset()
        content_type = request.content_type or ""
        if content_type.startswith("multipart/form-data"):
            upload = request.FILES.get("file")
            if upload is None:
                raise InvalidInput("the multipart upload has no 'file' part", field="file")
            options = s.UploadOptionsSerializer(data=request.data)
            source, filename = upload, upload.name or "upload"
        else:
            options = s.UploadOptionsSerializer(data=request.query_params)
            source = request.stream
            if source is None:
                raise InvalidInput("the request body is empty", field="body")
            filename = ""
        options.is_valid(raise_exception=True)
        governance, reason = options.to_governance_input()
        filename = options.validated_data["filename"] or filename or "upload"
        outcome = services.do_ingest_dataset_version(
            actor=request.user,
            dataset=dataset,
            source=source,
            filename=filename,
            governance=governance,
            override_reason=reason,
            declared_format=options.validated_data["format"],
        )
        version = self.get_queryset().get(pk=outcome.version.pk)
        body = {**self.get_serializer(version).data, "created": outcome.created}
        return Response(body, status=status.HTTP_201_CREATED if outcome.created else status.HTTP_200_OK)

    @extend_schema(request=s.RegisterSerializer, responses={201: s.DatasetVersionSerializer})
    @action(detail=False, methods=["post"])
    def register(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Register data already on local disk or in S3 by URI; its sha256 is verified."""
        dataset = self.get_dataset()
        serializer = s.RegisterSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        governance, reason = serializer.to_governance_input()
        outcome = services.do_register_dataset_version(
            actor=request.user,
            dataset=dataset,
            uri=serializer.validated_data["uri"],
            sha256=serializer.validated_data["sha256"].lower(),
            governance=governance,
            override_reason=reason,
            declared_format=serializer.validated_data["format"],
        )
        version = self.get_queryset().get(pk=outcome.version.pk)
        body = {**self.get_serializer(version).data, "created": outcome.created}
        return Response(body, status=status.HTTP_201_CREATED if outcome.created else status.HTTP_200_OK)

    @extend_schema(responses={(200, "application/octet-stream"): OpenApiTypes.BINARY})
    @action(detail=True, methods=["get"])
    def download(self, request: Request, *args: Any, **kwargs: Any) -> FileResponse:
        """The version's bytes: a governed read, recorded in the audit log."""
        version = self.get_version()
        stream = services.do_open_dataset_version(actor=request.user, version=version)
        extension = {"jsonl": "jsonl", "csv": "csv", "text": "txt", "parquet": "parquet"}[version.format]
        response = FileResponse(
            stream,
            as_attachment=True,
            filename=f"{version.dataset.name}-v{version.number}.{extension}",
            content_type="application/octet-stream",
        )
        response["Content-Length"] = str(version.size_bytes)
        response["ETag"] = f'"sha256:{version.sha256}"'
        response["X-Content-SHA256"] = version.sha256
        return response

    @extend_schema(request=s.GovernanceUpdateSerializer, responses=s.DatasetVersionSerializer)
    @action(detail=True, methods=["post"])
    def governance(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Change governance metadata (licence, permissions, purposes, ...) with a reason."""
        version = self.get_version()
        serializer = s.GovernanceUpdateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        changes = dict(serializer.validated_data)
        reason = changes.pop("reason")
        if "permissions" in changes:
            changes["permissions"] = changes["permissions"] or {}
        version = services.do_update_version_governance(
            actor=request.user, version=version, changes=changes, reason=reason
        )
        return Response(self.get_serializer(self.get_queryset().get(pk=version.pk)).data)

    @extend_schema(request=s.ReasonSerializer, responses=s.DatasetVersionSerializer)
    @action(detail=True, methods=["post"])
    def revoke(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Revoke the version: no more reads or training; downstream models are quarantined."""
        version = self.get_version()
        serializer = s.ReasonSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        version = services.do_revoke_dataset_version(
            actor=request.user, version=version, reason=serializer.validated_data["reason"]
        )
        return Response(self.get_serializer(self.get_queryset().get(pk=version.pk)).data)

    @extend_schema(responses=s.AuditEventSerializer(many=True))
    @action(detail=True, methods=["get"])
    def history(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Every recorded action on this version: who, when, what and why."""
        version = self.get_version()
        ensure_details_visible(request.user, version.dataset, "version history")
        events = AuditEvent.objects.filter(target_type="governance.datasetversion", target_id=str(version.pk))
        return Response(s.AuditEventSerializer(events.order_by("sequence"), many=True).data)


class AllVersionsViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    """Every dataset version the user may see, across datasets, with filters."""

    serializer_class = s.DatasetVersionSerializer
    filterset_class = DatasetVersionFilterSet
    ordering_fields = ["created_at", "size_bytes", "number"]

    def get_queryset(self) -> QuerySet[DatasetVersion]:
        return _version_queryset(self.request.user).order_by("dataset__name", "-number")


class DatasetTransferViewSet(viewsets.GenericViewSet):
    """Requests to hand a dataset to another team or steward.

    The owning team (or steward) requests with a reason; a member of the
    receiving team (the new steward, when only the steward changes) accepts
    or declines; the requesting side may cancel. Admins may do any of these.
    """

    serializer_class = s.DatasetTransferSerializer

    def get_dataset(self) -> Dataset:
        return get_object_or_404(Dataset.objects.restrict(self.request.user, "view"), name=self.kwargs["dataset_name"])

    def visible_transfers(self, dataset: Dataset) -> QuerySet[DatasetTransfer]:
        """Transfers are governance history: for those who see the dataset's
        details, and for the receiving side (who must see what to accept)."""
        transfers = DatasetTransfer.objects.filter(dataset=dataset).select_related(
            "dataset", "from_group", "to_group", "from_steward", "to_steward", "requested_by", "decided_by"
        )
        user = self.request.user
        if may_see_details(user, dataset):
            return transfers
        return transfers.filter(Q(to_steward=user) | Q(to_group__in=user.groups.all())).distinct()  # type: ignore[union-attr]

    def get_transfer(self) -> DatasetTransfer:
        transfer = self.visible_transfers(self.get_dataset()).filter(pk=self.kwargs["pk"]).first()
        if transfer is None:
            raise NotFound(f"dataset {self.kwargs['dataset_name']} has no transfer {self.kwargs['pk']}", field="transfer")
        return transfer

    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """The dataset's transfer requests, newest first (paginated like every list)."""
        page = self.paginate_queryset(self.visible_transfers(self.get_dataset()).order_by("-pk"))
        return self.get_paginated_response(s.DatasetTransferSerializer(page, many=True).data)

    @extend_schema(request=s.DatasetTransferRequestSerializer, responses={201: s.DatasetTransferSerializer})
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Request a transfer: nothing changes until the receiving side accepts."""
        dataset = self.get_dataset()
        body = s.DatasetTransferRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        transfer = services.do_request_dataset_transfer(
            actor=request.user,
            dataset=dataset,
            owner_group=body.validated_data.get("owner_group") or dataset.owner_group,
            steward=body.validated_data["steward"],
            reason=body.validated_data["reason"],
        )
        return Response(s.DatasetTransferSerializer(transfer).data, status=status.HTTP_201_CREATED)

    @extend_schema(responses=s.DatasetTransferSerializer)
    def retrieve(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return Response(s.DatasetTransferSerializer(self.get_transfer()).data)

    @extend_schema(request=s.OptionalReasonSerializer, responses=s.DatasetTransferSerializer)
    @action(detail=True, methods=["post"])
    def accept(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Accept the transfer (the receiving side): the dataset changes hands now."""
        body = s.OptionalReasonSerializer(data=request.data)  # a bad body is a 400 before any lookup
        body.is_valid(raise_exception=True)
        transfer = self.get_transfer()
        services.do_accept_dataset_transfer(actor=request.user, transfer=transfer, reason=body.validated_data["reason"])
        return Response(s.DatasetTransferSerializer(self.get_transfer()).data)

    @extend_schema(request=s.ReasonSerializer, responses=s.DatasetTransferSerializer)
    @action(detail=True, methods=["post"])
    def decline(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Decline (the receiving side) or cancel (the requesting side) a pending transfer."""
        body = s.ReasonSerializer(data=request.data)  # a bad body is a 400 before any lookup
        body.is_valid(raise_exception=True)
        transfer = self.get_transfer()
        services.do_decline_dataset_transfer(actor=request.user, transfer=transfer, reason=body.validated_data["reason"])
        return Response(s.DatasetTransferSerializer(self.get_transfer()).data)


class LicenceListView(APIView):
    """The bundled licences and what each permits."""

    @extend_schema(responses=s.LicenceSerializer(many=True))
    def get(self, request: HttpRequest) -> Response:
        data = [
            {"id": lic.id, "name": lic.name, "requires_text": lic.requires_text, "permissions": lic.permissions.as_dict()}
            for lic in all_licences().values()
        ]
        return Response(data)
