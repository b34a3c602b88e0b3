"""Shapes of the policy API: field validation only."""

from __future__ import annotations

from rest_framework import serializers

from policies.models import PolicyDecision
from policies.requests import ACTIONS


class ReferenceField(serializers.DictField):
    """A principal or resource named by reference or given as inline facts."""


class DecideSerializer(serializers.Serializer):
    principal = ReferenceField(help_text='{"user": "alice"}, {"consumer": "web-frontend"} or {"facts": {...}}')
    action = serializers.ChoiceField(choices=ACTIONS)
    resource = ReferenceField(
        help_text='{"kind": "DatasetVersion", "id": "claims-2024/v1"}, {"kind": "Endpoint", "id": ...} or {"facts": {...}}'
    )
    context = serializers.DictField(required=False, default=dict)  # type: ignore[assignment]


class DecideBatchSerializer(serializers.Serializer):
    requests = DecideSerializer(many=True)


class DecisionSerializer(serializers.Serializer):
    allowed = serializers.BooleanField()
    outcome = serializers.CharField()
    policies = serializers.ListField(child=serializers.CharField())
    facts = serializers.DictField()
    reason = serializers.CharField()
    principal = serializers.CharField()
    action = serializers.CharField()
    resource = serializers.CharField()
    context = serializers.DictField()  # type: ignore[assignment]
    policy_digest = serializers.CharField()
    inputs_digest = serializers.CharField()


class PolicyChangeSerializer(serializers.Serializer):
    file = serializers.CharField(help_text="e.g. residency.cedar or owners/claims-team.cedar")
    content = serializers.CharField(
        allow_null=True, allow_blank=True, trim_whitespace=False, help_text="The proposed text; null to delete the file."
    )


class PolicyDecisionSerializer(serializers.ModelSerializer):
    context = serializers.JSONField(source="detail.context", read_only=True)  # type: ignore[assignment]
    policies = serializers.ListField(source="detail.policies", child=serializers.CharField(), read_only=True)
    facts = serializers.JSONField(source="detail.facts", read_only=True)
    reason = serializers.CharField(source="detail.reason", read_only=True)

    class Meta:
        model = PolicyDecision
        fields = [
            "id",
            "decided_at",
            "principal",
            "action",
            "resource",
            "context",
            "outcome",
            "policies",
            "facts",
            "reason",
            "cached",
            "inputs_digest",
            "policy_digest",
        ]
