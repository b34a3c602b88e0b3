"""Consumers API views: parse, authorize, call one service, serialize.

Admins manage consumers; anyone else reads only the consumers they own.
Writes are refused (403) before the body is read, and again in the services.
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, permissions, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from governance.choices import Purpose
from pedigree.errors import InvalidInput
from policies import simulation
from serving import services
from serving.api import serializers as s
from serving.filtersets import ConsumerFilterSet
from serving.models import Consumer, is_admin
from serving.selectors import existing_endpoint_ids


class AdminWritesOwnerReads(permissions.IsAuthenticated):
    """Signed-in users read (scoped by the queryset); only admins write."""

    message = "only admins manage consumers, because the policies trust their clearances, purposes and region"

    def has_permission(self, request: Request, view: APIView) -> bool:
        if not super().has_permission(request, view):
            return False
        return request.method in permissions.SAFE_METHODS or is_admin(request.user)  # type: ignore[arg-type]


class ConsumerViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    """Consumers: the applications that call model endpoints, as the policies see them.

    Admins list, create, change (PATCH) and delete; a consumer's owner reads it
    and what it may call. Every change bumps ``facts_version`` and is recorded
    in the audit log, with the optional ``reason`` (in the body; for DELETE,
    ``?reason=``).
    """

    permission_classes = [AdminWritesOwnerReads]
    lookup_field = "name"
    lookup_value_regex = r"[-a-zA-Z0-9_]+"
    filterset_class = ConsumerFilterSet
    search_fields = ["name", "description"]
    ordering_fields = ["name", "created_at", "updated_at"]
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def get_queryset(self) -> QuerySet[Consumer]:
        return Consumer.objects.restrict(self.request.user, "view").select_related("owner").order_by("name")  # type: ignore[arg-type]

    def get_serializer_class(self) -> type[s.ConsumerSerializer]:
        if self.action == "partial_update":
            return s.ConsumerUpdateSerializer
        return s.ConsumerSerializer

    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        data.setdefault("owner", request.user)
        consumer = services.do_create_consumer(actor=request.user, **data)  # type: ignore[arg-type]  # signed in
        return Response(self.get_serializer(self.get_queryset().get(pk=consumer.pk)).data, status=status.HTTP_201_CREATED)

    def partial_update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        consumer = self.get_object()
        serializer = self.get_serializer(consumer, data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        changes = dict(serializer.validated_data)
        reason = changes.pop("reason", "")
        services.do_update_consumer(actor=request.user, consumer=consumer, changes=changes, reason=reason)  # type: ignore[arg-type]
        return Response(self.get_serializer(self.get_queryset().get(pk=consumer.pk)).data)

    @extend_schema(parameters=[OpenApiParameter("reason", str, description="Why: recorded in the audit log.")])
    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        reason = request.query_params.get("reason", "")
        services.do_delete_consumer(actor=request.user, consumer=self.get_object(), reason=reason)  # type: ignore[arg-type]
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        parameters=[
            OpenApiParameter("purpose", str, enum=Purpose.values, description="The purpose the calls would declare."),
            OpenApiParameter(
                "hypothetical", bool,
                description="Also the policies' what-ifs: a model trained on each dataset version (default false).",
            ),
        ],
        responses=s.ConsumerEndpointsSerializer,
    )
    @action(detail=True, methods=["get"])
    def endpoints(self, request: Request, name: str | None = None) -> Response:
        """What the policies let this consumer call: every endpoint, allowed or not, with the reason.

        A simulation (``endpoint.invoke`` for each endpoint the policies know):
        nothing is logged. The policies also know hypothetical endpoints, one
        per dataset version, for "what if a model were trained on it"; they are
        left out unless ``?hypothetical=true`` and then marked.
        """
        consumer = self.get_object()
        purpose = request.query_params.get("purpose") or None
        if purpose is not None and purpose not in Purpose.values:
            raise InvalidInput(f"unknown purpose {purpose!r}: use {', '.join(Purpose.values)}", field="purpose")
        flag = request.query_params.get("hypothetical", "false").lower()
        if flag not in {"true", "false", "1", "0"}:
            raise InvalidInput(f"hypothetical={flag!r}: use true or false", field="hypothetical")
        results = simulation.endpoints_for(consumer, {"purpose": purpose} if purpose else None)
        existing = existing_endpoint_ids()
        decisions = [
            {"endpoint": endpoint.id, "label": endpoint.label, "hypothetical": endpoint.id not in existing, **decision.as_dict()}
            for endpoint, decision in results
            if endpoint.id in existing or flag in {"true", "1"}
        ]
        body = {
            "consumer": consumer.name,
            "purpose": purpose,
            "allowed": [item["endpoint"] for item in decisions if item["allowed"]],
            "decisions": decisions,
        }
        return Response(s.ConsumerEndpointsSerializer(body).data)

