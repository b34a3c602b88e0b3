"""Shapes of the catalog API: field validation only, no workflow."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from governance.access import detail_dataset_ids
from governance.choices import ConsentBasis, DataFormat
from governance.licences import get_licence
from governance.lineage.status import dataset_version_status
from governance.models import AuditEvent, Dataset, DatasetTransfer, DatasetVersion
from governance.models.lineage import LineageStatus
from governance.services import PERMISSION_NAMES, GovernanceInput


class CommaListField(serializers.ListField):
    """A list given as JSON, repeated form keys, or one comma-separated string."""

    child = serializers.CharField()

    def to_internal_value(self, data: Any) -> list[Any]:
        if isinstance(data, str):
            data = [item.strip() for item in data.split(",") if item.strip()]
        elif isinstance(data, list) and len(data) == 1 and isinstance(data[0], str) and "," in data[0]:
            data = [item.strip() for item in data[0].split(",") if item.strip()]
        return super().to_internal_value(data)


class DatasetSerializer(serializers.ModelSerializer):
    owner_group = serializers.SlugRelatedField(slug_field="name", queryset=Group.objects.all())
    steward = serializers.SlugRelatedField(
        slug_field="username", queryset=get_user_model().objects.all(), required=False
    )
    version_count = serializers.IntegerField(read_only=True)
    latest_version = serializers.IntegerField(source="latest_number", read_only=True, allow_null=True)
    url = serializers.HyperlinkedIdentityField(view_name="dataset-detail", lookup_field="name")

    class Meta:
        model = Dataset
        fields = [
            "url",
            "name",
            "title",
            "description",
            "owner_group",
            "steward",
            "domain",
            "labels",
            "version_count",
            "latest_version",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["created_at", "updated_at"]

    def validate_labels(self, value: Any) -> dict[str, str]:
        if not isinstance(value, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()
        ):
            raise serializers.ValidationError("labels must be an object of string keys to string values")
        return value


class DatasetUpdateSerializer(DatasetSerializer):
    class Meta(DatasetSerializer.Meta):
        read_only_fields = ["name", "created_at", "updated_at"]


class PermissionsSerializer(serializers.Serializer):
    training = serializers.BooleanField(required=False)
    commercial_use = serializers.BooleanField(required=False)
    attribution = serializers.BooleanField(required=False)
    share_alike = serializers.BooleanField(required=False)


class GovernanceInputSerializer(serializers.Serializer):
    """Governance metadata given with an upload, a registration or an update."""

    licence = serializers.CharField(max_length=64)
    licence_text = serializers.CharField(required=False, allow_blank=True, default="")
    copyright_holder = serializers.CharField(required=False, allow_blank=True, default="", max_length=200)
    permissions = serializers.JSONField(
        required=False,
        help_text="Override what the licence permits: {training, commercial_use, attribution, share_alike}; needs a reason.",
    )
    allowed_purposes = CommaListField(required=False, default=list)
    consent_basis = serializers.ChoiceField(choices=ConsentBasis.choices, required=False, default=ConsentBasis.UNSPECIFIED)
    residency_regions = CommaListField(required=False, default=list)
    expires_at = serializers.DateField(required=False, allow_null=True, default=None)
    notes = serializers.CharField(required=False, allow_blank=True, default="")
    reason = serializers.CharField(required=False, allow_blank=True, default="", help_text="Why permissions are overridden.")

    def validate_permissions(self, value: Any) -> dict[str, bool]:
        if value in (None, ""):
            return {}
        if not isinstance(value, dict):
            raise serializers.ValidationError("permissions must be an object")
        for key, flag in value.items():
            if key not in PERMISSION_NAMES:
                raise serializers.ValidationError(f"unknown permission {key!r}: use {', '.join(PERMISSION_NAMES)}")
            if not isinstance(flag, bool):
                raise serializers.ValidationError(f"permission {key!r} must be true or false")
        return value

    def to_governance_input(self) -> tuple[GovernanceInput, str]:
        names = set(GovernanceInput.__dataclass_fields__)
        data = {key: value for key, value in self.validated_data.items() if key in names}
        reason = self.validated_data.get("reason", "")
        data["permissions"] = data.get("permissions") or {}
        return GovernanceInput(**data), reason


class UploadOptionsSerializer(GovernanceInputSerializer):
    format = serializers.ChoiceField(choices=DataFormat.choices, required=False, allow_null=True, default=None)
    filename = serializers.CharField(required=False, allow_blank=True, default="", max_length=255)


class RegisterSerializer(GovernanceInputSerializer):
    uri = serializers.CharField(max_length=1024, help_text="Local path, file:// or s3:// URI of the data.")
    sha256 = serializers.RegexField(r"^[0-9a-fA-F]{64}$", help_text="The digest the data must have.")
    format = serializers.ChoiceField(choices=DataFormat.choices, required=False, allow_null=True, default=None)


class GovernanceUpdateSerializer(serializers.Serializer):
    """A partial change to governance metadata; ``reason`` is required."""

    reason = serializers.CharField()
    licence = serializers.CharField(max_length=64, required=False)
    licence_text = serializers.CharField(required=False, allow_blank=True)
    copyright_holder = serializers.CharField(required=False, allow_blank=True, max_length=200)
    permissions = serializers.JSONField(required=False)
    allowed_purposes = CommaListField(required=False)
    consent_basis = serializers.ChoiceField(choices=ConsentBasis.choices, required=False)
    residency_regions = CommaListField(required=False)
    expires_at = serializers.DateField(required=False, allow_null=True)
    notes = serializers.CharField(required=False, allow_blank=True)

    validate_permissions = GovernanceInputSerializer.validate_permissions


class ReasonSerializer(serializers.Serializer):
    reason = serializers.CharField()


class OptionalReasonSerializer(serializers.Serializer):
    reason = serializers.CharField(required=False, allow_blank=True, default="")


class DatasetTransferRequestSerializer(serializers.Serializer):
    """Hand a dataset to another team (and a steward from it), or to another steward."""

    owner_group = serializers.SlugRelatedField(
        slug_field="name", queryset=Group.objects.all(), required=False,
        help_text="The receiving team (default: the current one, for a change of steward only).",
    )
    steward = serializers.SlugRelatedField(
        slug_field="username", queryset=get_user_model().objects.all(),
        help_text="The new steward: a member of the receiving team.",
    )
    reason = serializers.CharField()


class DatasetTransferSerializer(serializers.ModelSerializer):
    dataset: serializers.Field = serializers.SlugRelatedField(slug_field="name", read_only=True)
    from_group: serializers.Field = serializers.SlugRelatedField(slug_field="name", read_only=True)
    to_group: serializers.Field = serializers.SlugRelatedField(slug_field="name", read_only=True)
    from_steward: serializers.Field = serializers.SlugRelatedField(slug_field="username", read_only=True)
    to_steward: serializers.Field = serializers.SlugRelatedField(slug_field="username", read_only=True)
    requested_by: serializers.Field = serializers.SlugRelatedField(slug_field="username", read_only=True)
    decided_by: serializers.Field = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = DatasetTransfer
        fields = [
            "id", "dataset", "from_group", "to_group", "from_steward", "to_steward", "reason", "status",
            "requested_by", "requested_at", "decided_by", "decided_at", "decision_reason",
        ]
        read_only_fields = fields


class DatasetVersionSerializer(serializers.ModelSerializer):
    dataset: serializers.Field = serializers.SlugRelatedField(slug_field="name", read_only=True)
    created_by: serializers.Field = serializers.SlugRelatedField(slug_field="username", read_only=True)
    status_changed_by: serializers.Field = serializers.SlugRelatedField(slug_field="username", read_only=True)
    derived_from = serializers.SerializerMethodField()
    licence_name = serializers.SerializerMethodField()
    permissions = serializers.SerializerMethodField()
    links = serializers.SerializerMethodField()
    status = serializers.SerializerMethodField(
        help_text="The effective status: active, revoked, expired (from the instant its expiry date passes) "
        "or quarantined (by a revoked or expired original upstream), as the policies see it."
    )

    class Meta:
        model = DatasetVersion
        fields = [
            "dataset",
            "number",
            "sha256",
            "size_bytes",
            "record_count",
            "format",
            "layout",
            "fields",
            "text_fields",
            "storage_uri",
            "source_uri",
            "original_filename",
            "derived_from",
            "created_by",
            "created_at",
            "status",
            "status_reason",
            "status_changed_at",
            "status_changed_by",
            "licence",
            "licence_name",
            "licence_text",
            "copyright_holder",
            "permissions",
            "permissions_overridden",
            "allowed_purposes",
            "consent_basis",
            "residency_regions",
            "expires_at",
            "notes",
            "pii_status",
            "pii_types",
            "facts_version",
            "links",
        ]
        read_only_fields = fields

    # Not catalog metadata: only the owning team, the steward, auditors and
    # admins see these (governance.access explains why).
    DETAIL_FIELDS = (
        "sha256", "storage_uri", "source_uri", "original_filename", "status_reason", "status_changed_by",
        "notes", "created_by",
    )
    DETAIL_LINKS = ("download", "history", "governance", "revoke")

    def _details_visible(self, version: DatasetVersion) -> bool:
        request = self.context.get("request")
        if request is None:
            return False  # no user to check: show the catalog entry only (fail closed)
        context: dict[str, Any] = self.context  # type: ignore[assignment]  # the root's dict, shared by a list's items
        if "_detail_dataset_ids" not in context:
            context["_detail_dataset_ids"] = detail_dataset_ids(request.user)
        allowed = context["_detail_dataset_ids"]
        return allowed is None or version.dataset_id in allowed

    def to_representation(self, instance: DatasetVersion) -> dict[str, Any]:
        data: dict[str, Any] = super().to_representation(instance)
        if not self._details_visible(instance):
            for name in self.DETAIL_FIELDS:
                data.pop(name, None)
            data["links"] = {key: value for key, value in data["links"].items() if key not in self.DETAIL_LINKS}
            data["details_hidden"] = True
        return data

    @extend_schema_field(serializers.ChoiceField(choices=LineageStatus.choices))
    def get_status(self, version: DatasetVersion) -> str:
        return dataset_version_status(version)

    def get_derived_from(self, version: DatasetVersion) -> str | None:
        return version.derived_from.label if version.derived_from_id else None  # type: ignore[union-attr]

    def get_licence_name(self, version: DatasetVersion) -> str:
        licence = get_licence(version.licence)
        return licence.name if licence else version.licence

    def get_permissions(self, version: DatasetVersion) -> dict[str, bool]:
        return {
            "training": version.permits_training,
            "commercial_use": version.permits_commercial_use,
            "attribution": version.requires_attribution,
            "share_alike": version.requires_share_alike,
        }

    def get_links(self, version: DatasetVersion) -> dict[str, str]:
        request = self.context.get("request")
        base = f"/api/v1/datasets/{version.dataset.name}/versions/{version.number}/"
        if request is not None:
            base = request.build_absolute_uri(base)
        return {
            "self": base,
            "download": base + "download/",
            "history": base + "history/",
            "governance": base + "governance/",
            "revoke": base + "revoke/",
        }


class AuditEventSerializer(serializers.ModelSerializer):
    actor = serializers.CharField(source="actor_label")

    class Meta:
        model = AuditEvent
        fields = ["sequence", "created_at", "actor", "action", "target_label", "reason", "changes", "hash"]
        read_only_fields = fields


class LicenceSerializer(serializers.Serializer):
    id = serializers.CharField()
    name = serializers.CharField()
    requires_text = serializers.BooleanField()
    permissions = serializers.DictField(child=serializers.BooleanField())
