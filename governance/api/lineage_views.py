"""Lineage API under /api/v1/lineage/: walk the graph, read explained facts, preview impact,
revoke, and record quarantine exceptions. Views parse, call one service, serialize."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.reverse import reverse
from rest_framework.views import APIView

from governance.access import ensure_node_visible, visible_node_ids
from governance.lineage import graph
from governance.lineage import services as lineage
from governance.lineage.explain import effective_facts
from governance.lineage.impact import impact_report
from governance.lineage.status import node_status_now
from governance.lineage.svg import render_lineage_svg
from governance.models.lineage import (
    AssetKind,
    EdgeRelation,
    LineageGraphState,
    LineageNode,
    QuarantineException,
)
from pedigree.errors import InvalidInput, NotFound


class _TextRenderer(BaseRenderer):
    charset = "utf-8"

    def render(self, data: Any, accepted_media_type: str | None = None, renderer_context: Any = None) -> bytes:
        if isinstance(data, bytes):
            return data
        if isinstance(data, str):
            return data.encode()
        return JSONRenderer().render(data)  # errors keep their JSON body


class CSVRenderer(_TextRenderer):
    media_type = "text/csv"
    format = "csv"


class HTMLReportRenderer(_TextRenderer):
    media_type = "text/html"
    format = "html"


class SVGRenderer(_TextRenderer):
    media_type = "image/svg+xml"
    format = "svg"


class LineageNodeSerializer(serializers.ModelSerializer):
    own_status = serializers.CharField(read_only=True, help_text="active, revoked or expired")
    effective_status = serializers.SerializerMethodField(help_text="active, quarantined, revoked or expired, now")
    summary = serializers.SerializerMethodField()

    def get_effective_status(self, node: LineageNode) -> str:
        return node_status_now(node)

    class Meta:
        model = LineageNode
        fields = [
            "id", "kind", "reference", "label", "own_status", "effective_status", "facts_version",
            "own_facts", "summary", "created_at", "updated_at",
        ]

    @extend_schema_field(OpenApiTypes.OBJECT)
    def get_summary(self, node: LineageNode) -> dict[str, Any]:
        return dict(node.facts.get("summary", {}))


class LineageReasonSerializer(serializers.Serializer):
    reason = serializers.CharField()


class ExceptionCreateSerializer(serializers.Serializer):
    cause = serializers.IntegerField(help_text="The revoked or expired upstream node to except.")
    reason = serializers.CharField()
    expires_at = serializers.DateTimeField()


class QuarantineExceptionSerializer(serializers.ModelSerializer):
    granted_by: serializers.SlugRelatedField = serializers.SlugRelatedField(slug_field="username", read_only=True)
    withdrawn_by: serializers.SlugRelatedField = serializers.SlugRelatedField(slug_field="username", read_only=True)
    node_label = serializers.CharField(source="node.label", read_only=True)
    cause_label = serializers.CharField(source="cause.label", read_only=True)

    class Meta:
        model = QuarantineException
        fields = [
            "id", "node", "node_label", "cause", "cause_label", "reason", "expires_at", "granted_by",
            "granted_at", "withdrawn_at", "withdrawn_by",
        ]


def _depth(request: Request) -> int | None:
    raw = request.query_params.get("depth")
    if raw in (None, ""):
        return None
    try:
        return int(raw)
    except ValueError:
        raise InvalidInput(f"depth {raw!r} is not a whole number", field="depth") from None


def _relations(request: Request) -> list[str] | None:
    wanted = [item for value in request.query_params.getlist("relation") for item in value.split(",") if item]
    for relation in wanted:
        if relation not in EdgeRelation.values:
            raise InvalidInput(f"unknown relation {relation!r}: use {', '.join(EdgeRelation.values)}", field="relation")
    return wanted or None


_walk_parameters = [
    OpenApiParameter("depth", int, description="How many edges to follow (default 50)."),
    OpenApiParameter("relation", str, many=True, description="Only follow these relations."),
]


class LineageIndexView(APIView):
    """The lineage API's entry point: where to go, and the graph's change counter."""

    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request: Request) -> Response:
        state = LineageGraphState.objects.filter(pk=1).first()
        return Response(
            {
                "nodes": reverse("lineage-node-list", request=request),
                "exceptions": reverse("lineage-exception-list", request=request),
                "graph_version": state.graph_version if state else 0,
                "kinds": AssetKind.values,
                "relations": EdgeRelation.values,
            }
        )


class LineageNodeViewSet(viewsets.ReadOnlyModelViewSet):
    """Assets in the lineage graph. Filter with ?kind=, ?reference=, ?status=.

    Lineage facts are not catalog metadata: a dataset version's node is for
    those who see the version's details (its team, steward, auditors, admins),
    any other node for the teams among its effective owners
    (``governance.access``). Walks list only the assets the user may see.
    Revoking needs the dataset's change permission, exceptions need an admin.
    """

    serializer_class = LineageNodeSerializer
    filterset_class = None
    lookup_value_regex = r"[0-9]+"  # /nodes/abc/... is a 404, not int("abc") failing in _node
    search_fields = ["label", "reference"]
    ordering_fields = ["id", "label", "kind", "updated_at"]

    def get_queryset(self) -> QuerySet[LineageNode]:
        queryset = LineageNode.objects.all().order_by("id")
        visible = visible_node_ids(self.request.user)
        if visible is not None:
            queryset = queryset.filter(pk__in=visible)
        params = self.request.query_params
        if params.get("kind"):
            queryset = queryset.filter(kind=params["kind"])
        if params.get("reference"):
            queryset = queryset.filter(reference=params["reference"])
        if params.get("status"):
            queryset = queryset.filter(effective_status=params["status"])
        return queryset

    def _node(self) -> LineageNode:
        node = graph.get_node(int(self.kwargs["pk"]))
        ensure_node_visible(self.request.user, node)
        return node

    def retrieve(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return Response(LineageNodeSerializer(self._node()).data)

    def _walk(self, request: Request, direction: str) -> Response:
        node = self._node()
        walker = graph.upstream if direction == "up" else graph.downstream
        reached = walker(node, max_depth=_depth(request), relations=_relations(request))
        visible = visible_node_ids(request.user)
        if visible is not None:
            reached = [r for r in reached if r.node_id in visible]
        found = LineageNode.objects.in_bulk([r.node_id for r in reached])
        return Response(
            {
                "node": LineageNodeSerializer(node).data,
                "direction": "upstream" if direction == "up" else "downstream",
                "count": len(reached),
                "assets": [
                    {"id": r.node_id, "depth": r.depth, "kind": found[r.node_id].kind, "reference": found[r.node_id].reference,
                     "label": found[r.node_id].label, "status": found[r.node_id].effective_status}
                    for r in reached
                ],
            }
        )

    @extend_schema(parameters=_walk_parameters, responses=OpenApiTypes.OBJECT)
    @action(detail=True, methods=["get"])
    def upstream(self, request: Request, pk: str | None = None) -> Response:
        """Every asset this one comes from, nearest first."""
        return self._walk(request, "up")

    @extend_schema(parameters=_walk_parameters, responses=OpenApiTypes.OBJECT)
    @action(detail=True, methods=["get"])
    def downstream(self, request: Request, pk: str | None = None) -> Response:
        """Every asset made from this one, nearest first."""
        return self._walk(request, "down")

    @extend_schema(responses=OpenApiTypes.OBJECT)
    @action(detail=True, methods=["get"])
    def facts(self, request: Request, pk: str | None = None) -> Response:
        """Effective facts, each value with the sources and paths that explain it."""
        explain = request.query_params.get("explain", "1") not in {"0", "false", "no"}
        return Response(effective_facts(node=self._node(), explain=explain).as_dict())

    @extend_schema(
        parameters=[OpenApiParameter("format", str, enum=["json", "csv", "html"])],
        responses={(200, "application/json"): OpenApiTypes.OBJECT, (200, "text/csv"): OpenApiTypes.STR,
                   (200, "text/html"): OpenApiTypes.STR},
    )
    @action(detail=True, methods=["get"], renderer_classes=[JSONRenderer, CSVRenderer, HTMLReportRenderer])
    def impact(self, request: Request, pk: str | None = None) -> Response:
        """Every downstream asset with its path: a preview while the asset is active, the outcome after."""
        report = impact_report(self._node())
        kind = getattr(request.accepted_renderer, "format", "json")
        if kind == "csv":
            response = Response(report.as_csv())
            response["Content-Disposition"] = f'attachment; filename="impact-{report.subject.pk}.csv"'
            return response
        if kind == "html":
            return Response(report.as_html())
        return Response(report.as_json())

    @extend_schema(responses={(200, "image/svg+xml"): OpenApiTypes.STR}, parameters=[OpenApiParameter("depth", int)])
    @action(detail=True, methods=["get"], renderer_classes=[SVGRenderer])
    def svg(self, request: Request, pk: str | None = None) -> Response:
        """The lineage picture around this asset, coloured by status."""
        return Response(render_lineage_svg(self._node(), depth=_depth(request) or 3))

    @extend_schema(request=LineageReasonSerializer, responses=OpenApiTypes.OBJECT)
    @action(detail=True, methods=["post"])
    def revoke(self, request: Request, pk: str | None = None) -> Response:
        """Revoke a dataset version (with a reason); returns the impact report of what it quarantined."""
        serializer = LineageReasonSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        node = lineage.do_revoke_asset(actor=request.user, node=self._node(), reason=serializer.validated_data["reason"])
        return Response(impact_report(node).as_json())

    @extend_schema(request=ExceptionCreateSerializer, responses=QuarantineExceptionSerializer(many=True))
    @action(detail=True, methods=["get", "post"])
    def exceptions(self, request: Request, pk: str | None = None) -> Response:
        """Quarantine exceptions of this asset; POST records one (admins; reason and expiry required)."""
        node = self._node()
        if request.method == "POST":
            serializer = ExceptionCreateSerializer(data=request.data)
            serializer.is_valid(raise_exception=True)
            data = serializer.validated_data
            exception = lineage.do_grant_quarantine_exception(
                actor=request.user, node=node, cause=graph.get_node(data["cause"]),
                reason=data["reason"], expires_at=data["expires_at"],
            )
            return Response(QuarantineExceptionSerializer(exception).data, status=status.HTTP_201_CREATED)
        rows = QuarantineException.objects.filter(node=node).select_related("node", "cause", "granted_by", "withdrawn_by")
        return Response(QuarantineExceptionSerializer(rows, many=True).data)


class QuarantineExceptionViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Every quarantine exception; withdraw one with a reason (admins)."""

    serializer_class = QuarantineExceptionSerializer
    filterset_class = None
    lookup_value_regex = r"[0-9]+"

    def get_queryset(self) -> QuerySet[QuarantineException]:
        queryset = QuarantineException.objects.select_related("node", "cause", "granted_by", "withdrawn_by")
        visible = visible_node_ids(self.request.user)
        if visible is not None:
            queryset = queryset.filter(node__in=visible)
        return queryset.order_by("-granted_at")

    @extend_schema(request=LineageReasonSerializer, responses=QuarantineExceptionSerializer)
    @action(detail=True, methods=["post"])
    def withdraw(self, request: Request, pk: str | None = None) -> Response:
        """End the exception now; the asset is quarantined again if its cause still holds."""
        serializer = LineageReasonSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        exception = self.get_queryset().filter(pk=int(pk or 0)).first()
        if exception is None:
            raise NotFound(f"quarantine exception {pk} does not exist", field="exception")
        exception = lineage.do_withdraw_quarantine_exception(
            actor=request.user, exception=exception, reason=serializer.validated_data["reason"]
        )
        return Response(QuarantineExceptionSerializer(exception).data)
