"""Shapes of the consumers API: field validation only, no workflow."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from rest_framework import serializers

from governance.choices import Purpose, Region
from serving.models import Consumer

_PURPOSES = ", ".join(Purpose.values)
_REGIONS = ", ".join(Region.values)


class StrictCharField(serializers.CharField):
    """A string, and only a string: DRF would turn 7 or true into "7" or "True"."""

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return str(super().to_internal_value(data))


class NonEmptyStringList(serializers.ListField):
    """A JSON list of non-empty strings (surrounding spaces trimmed)."""

    child = StrictCharField(max_length=100, allow_blank=False, trim_whitespace=True)

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("required", False)
        super().__init__(**kwargs)


class ConsumerSerializer(serializers.ModelSerializer):
    """A consumer: the principal the policies see when it calls an endpoint."""

    url = serializers.HyperlinkedIdentityField(view_name="consumer-detail", lookup_field="name")
    # Declared, not derived from the model: uniqueness is the service's to decide (409 Conflict).
    name = serializers.SlugField(max_length=100, help_text="Unique slug, e.g. web-frontend; never changes.")
    owner = serializers.SlugRelatedField(
        slug_field="username",
        queryset=get_user_model().objects.all(),
        required=False,
        allow_null=True,
        help_text="Username of the person accountable; defaults to the admin who creates it.",
    )
    groups = NonEmptyStringList(help_text="Teams it belongs to, e.g. support-team.")
    pii_clearances = NonEmptyStringList(
        help_text="PII entity types it may receive, as the scanner names them, e.g. PERSON, US_SSN."
    )
    purposes = NonEmptyStringList(help_text=f"Purposes it declares: {_PURPOSES}.")
    region = serializers.ChoiceField(
        choices=Region.choices,
        help_text="Where it serves its users.",
        error_messages={"invalid_choice": f'unknown region "{{input}}": use {_REGIONS}'},
    )
    commercial = serializers.BooleanField(required=False, help_text="Whether it uses models commercially.")
    reason = serializers.CharField(
        write_only=True, required=False, allow_blank=True, default="",
        help_text="Why (required for every change): recorded in the audit log.",
    )

    class Meta:
        model = Consumer
        fields = [
            "url", "name", "description", "owner", "groups", "pii_clearances", "purposes", "region", "commercial",
            "facts_version", "created_at", "updated_at", "reason",
        ]
        read_only_fields = ["facts_version", "created_at", "updated_at"]

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, dict):
            writable = {name for name, field in self.fields.items() if not field.read_only}
            unknown = sorted(set(data) - writable)
            if unknown:
                raise serializers.ValidationError(
                    {name: [f"unknown or read-only field: write {', '.join(sorted(writable - {'reason'}))} (and a reason)"] for name in unknown}
                )
        return super().to_internal_value(data)

    def validate_purposes(self, value: list[str]) -> list[str]:
        for purpose in value:
            if purpose not in Purpose.values:
                raise serializers.ValidationError(f'unknown purpose "{purpose}": use {_PURPOSES}')
        return value


class ConsumerUpdateSerializer(ConsumerSerializer):
    """PATCH: any field but the name (the policies and the decision log refer to it)."""

    name = serializers.SlugField(read_only=True)
    region = serializers.ChoiceField(
        choices=Region.choices,
        required=False,
        help_text="Where it serves its users.",
        error_messages={"invalid_choice": f'unknown region "{{input}}": use {_REGIONS}'},
    )


class EndpointDecisionSerializer(serializers.Serializer):
    """One endpoint and the policies' decision on this consumer calling it."""

    endpoint = serializers.CharField(help_text="The endpoint's id, as the policies name it.")
    label = serializers.CharField()  # type: ignore[assignment]  # a field, not Field.label
    hypothetical = serializers.BooleanField(help_text="A what-if of the policies (a model trained on a dataset version).")
    allowed = serializers.BooleanField()
    outcome = serializers.CharField(help_text="allow, deny or error")
    reason = serializers.CharField(help_text="Why, naming the upstream data and what to do.")
    policies = serializers.ListField(child=serializers.CharField(), help_text="The deciding policies.")
    facts = serializers.DictField(help_text="The facts that triggered them.")
    policy_digest = serializers.CharField()


class ConsumerEndpointsSerializer(serializers.Serializer):
    """What a consumer may call: every endpoint, with the decision."""

    consumer = serializers.CharField()
    purpose = serializers.CharField(allow_null=True)
    allowed = serializers.ListField(child=serializers.CharField(), help_text="Ids of the listed endpoints it may call.")
    decisions = EndpointDecisionSerializer(many=True)
