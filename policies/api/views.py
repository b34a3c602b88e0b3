"""Policy API views: parse, call one service, serialize.

Policies are the platform admins' business (DESIGN: "platform admin:
policies"), so every view here is for staff.
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, viewsets
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from pedigree.api import AdminsOrAuditorsReading, IsPlatformAdmin
from pedigree.errors import InvalidInput, NotFound
from policies import decisions, simulation
from policies.api import serializers as s
from policies.decision_log import decision_log
from policies.facts import find_resource
from policies.models import PolicyDecision
from policies.principals import principal_kind


def _context(request: Request) -> dict[str, str]:
    purpose = request.query_params.get("purpose")
    return {"purpose": purpose} if purpose else {}


class PolicyStatusView(APIView):
    """The policy set in force: files, policies, digest, and the last reload problem."""

    permission_classes = [AdminsOrAuditorsReading]

    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request: Request) -> Response:
        return Response(decisions.policy_status())


class PolicyReloadView(APIView):
    """Check the policy files now and load them if they are valid."""

    permission_classes = [IsPlatformAdmin]

    @extend_schema(request=None, responses=OpenApiTypes.OBJECT)
    def post(self, request: Request) -> Response:
        decisions.reload_policies()
        return Response(decisions.policy_status())


class DecideView(APIView):
    """Ask the engine a question (a what-if: not written to the decision log)."""

    permission_classes = [IsPlatformAdmin]

    @extend_schema(request=s.DecideSerializer, responses=s.DecisionSerializer)
    def post(self, request: Request) -> Response:
        serializer = s.DecideSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        (decision,) = decisions.decide_many(
            [
                (
                    simulation.resolve_principal(data["principal"]),
                    data["action"],
                    simulation.resolve_resource(data["resource"]),
                    data["context"],
                )
            ],
            log=False,
        )
        return Response(decision.as_dict())


class DecideBatchView(APIView):
    """Ask many questions at once (one engine call)."""

    permission_classes = [IsPlatformAdmin]

    @extend_schema(request=s.DecideBatchSerializer, responses=s.DecisionSerializer(many=True))
    def post(self, request: Request) -> Response:
        serializer = s.DecideBatchSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        requests = [
            (
                simulation.resolve_principal(item["principal"]),
                item["action"],
                simulation.resolve_resource(item["resource"]),
                item["context"],
            )
            for item in serializer.validated_data["requests"]
        ]
        return Response([decision.as_dict() for decision in decisions.decide_many(requests, log=False)])


class EndpointInvokersView(APIView):
    """Which consumers may invoke endpoint X? Every consumer, allowed or not, with the reason."""

    permission_classes = [AdminsOrAuditorsReading]

    @extend_schema(
        parameters=[
            OpenApiParameter("endpoint", str, required=True, description="Endpoint id (e.g. claims-2024/v1 for a hypothetical one)."),
            OpenApiParameter("purpose", str, description="Declared purpose of the calls."),
        ],
        responses=OpenApiTypes.OBJECT,
    )
    def get(self, request: Request) -> Response:
        endpoint_id = request.query_params.get("endpoint")
        if not endpoint_id:
            raise InvalidInput("name the endpoint: ?endpoint=<id>", field="endpoint")
        endpoint = find_resource("Endpoint", endpoint_id)
        results = simulation.who_may_invoke(endpoint, _context(request))
        return Response(
            {
                "endpoint": endpoint.id,
                "label": endpoint.label,
                "allowed": [consumer.name for consumer, decision in results if decision.allowed],
                "decisions": [{"consumer": consumer.name, **decision.as_dict()} for consumer, decision in results],
            }
        )


class ConsumerEndpointsView(APIView):
    """Which endpoints may consumer Y call? Every known endpoint, with the reason."""

    permission_classes = [AdminsOrAuditorsReading]

    @extend_schema(
        parameters=[
            OpenApiParameter("consumer", str, required=True),
            OpenApiParameter("purpose", str, description="Declared purpose of the calls."),
        ],
        responses=OpenApiTypes.OBJECT,
    )
    def get(self, request: Request) -> Response:
        name = request.query_params.get("consumer")
        consumer = principal_kind("Consumer").named(name) if name else None
        if consumer is None:
            raise NotFound(f"no consumer named {name!r}", field="consumer")
        results = simulation.endpoints_for(consumer, _context(request))
        return Response(
            {
                "consumer": consumer.name,
                "allowed": [endpoint.id for endpoint, decision in results if decision.allowed],
                "decisions": [
                    {"endpoint": endpoint.id, "label": endpoint.label, **decision.as_dict()}
                    for endpoint, decision in results
                ],
            }
        )


class PolicyChangeView(APIView):
    """What would change if this policy file were applied? Nothing is changed."""

    permission_classes = [IsPlatformAdmin]

    @extend_schema(request=s.PolicyChangeSerializer, responses=OpenApiTypes.OBJECT)
    def post(self, request: Request) -> Response:
        serializer = s.PolicyChangeSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        diff = simulation.simulate_policy_change(serializer.validated_data["file"], serializer.validated_data["content"])
        return Response(diff.as_dict(), status=200 if diff.valid else 400)


class PolicyDecisionViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """The decision log, newest first; filter by outcome, action, principal, resource."""

    permission_classes = [AdminsOrAuditorsReading]
    serializer_class = s.PolicyDecisionSerializer
    filterset_fields = ["outcome", "action", "principal", "resource", "cached"]
    ordering_fields = ["decided_at"]

    def get_queryset(self) -> QuerySet[PolicyDecision]:
        return PolicyDecision.objects.select_related("detail").order_by("-decided_at", "-id")

    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        decision_log.flush()  # show what is still queued, too
        return super().list(request, *args, **kwargs)
