"""Datasets and their immutable, content-addressed versions."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth.models import Group
from django.core.validators import RegexValidator
from django.db import models
from django.db.models import Q

from governance.choices import (
    ConsentBasis,
    DataFormat,
    PiiStatus,
    RecordLayout,
    TransferStatus,
    VersionStatus,
)
from pedigree.errors import ImmutableField
from pedigree.roles import is_admin, reads_everything
from pedigree.types import Actor

AnyUser = Actor


class DatasetQuerySet(models.QuerySet["Dataset"]):
    """Reads of datasets scoped to what a user may do with them."""

    def restrict(self, user: AnyUser, action: str = "view") -> DatasetQuerySet:
        """Datasets on which ``user`` may perform ``action``.

        - ``view``: the catalog entry (name, title, owners, licence, PII
          summary): any signed-in user.
        - ``view_details``: what is not catalog metadata (PII reports with
          samples, version history with reasons, storage and source URIs,
          digests, lineage facts): the owning team, the steward, auditors
          and admins.
        - ``change`` (and ``download``, whose floor this is; the policy engine
          decides downloads): the owning team, the steward and admins.
          Auditors read everything and change nothing; ``is_staff`` alone (a
          console login) grants nothing.
        """
        if not user.is_authenticated or not user.is_active:
            return self.none()
        if action == "view":
            return self.all()
        if action not in {"view_details", "change", "download"}:
            raise ValueError(f"unknown dataset action {action!r}")
        if (reads_everything(user) if action == "view_details" else is_admin(user)):
            return self.all()
        return self.filter(Q(steward=user) | Q(owner_group__in=user.groups.all())).distinct()


class Dataset(models.Model):
    """A named body of training data, owned by a group and cared for by a steward.

    The dataset itself holds descriptive metadata; the bytes and the governance
    facts live on its immutable versions.
    """

    name = models.SlugField(
        max_length=100,
        unique=True,
        help_text="Unique slug, e.g. claims-2024; used in URLs and commands.",
    )
    title = models.CharField(max_length=200, blank=True)
    description = models.TextField(blank=True)
    owner_group = models.ForeignKey(
        Group,
        on_delete=models.PROTECT,
        related_name="owned_datasets",
        help_text="The team that owns the data; its members may change the dataset.",
    )
    steward = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="stewarded_datasets",
        help_text="The person accountable for the data's governance metadata.",
    )
    domain = models.CharField(max_length=100, blank=True, help_text="Business domain, e.g. claims.")
    labels = models.JSONField(default=dict, blank=True, help_text="Free key/value labels.")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", null=True
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = DatasetQuerySet.as_manager()

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        from django.core.exceptions import ValidationError

        if not isinstance(self.labels, dict) or not all(
            isinstance(key, str) and isinstance(value, str) for key, value in self.labels.items()
        ):
            raise ValidationError({"labels": "labels must be an object of string keys to string values"})

    def may(self, user: AnyUser, action: str) -> bool:
        """Whether ``user`` may perform ``action`` on this dataset (see ``restrict``)."""
        return Dataset.objects.restrict(user, action).filter(pk=self.pk).exists()

    def latest_version(self) -> DatasetVersion | None:
        return self.versions.order_by("-number").first()


sha256_validator = RegexValidator(r"^[0-9a-f]{64}$", "must be 64 lowercase hex digits")


class DatasetVersion(models.Model):
    """One immutable snapshot of a dataset's bytes, with its governance facts.

    Content fields (digest, size, records, format, fields, storage) never change
    after creation: ``save()`` on a stored version must name ``update_fields``
    and may only touch governance and status fields, which services change
    through recorded actions (see ``governance.services``).
    """

    CONTENT_FIELDS = frozenset(
        {
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
            "created_by",
            "created_at",
            "derived_from",
        }
    )
    GOVERNANCE_FIELDS = frozenset(
        {
            "licence",
            "licence_text",
            "copyright_holder",
            "permits_training",
            "permits_commercial_use",
            "requires_attribution",
            "requires_share_alike",
            "permissions_overridden",
            "allowed_purposes",
            "consent_basis",
            "residency_regions",
            "expires_at",
            "notes",
        }
    )
    STATUS_FIELDS = frozenset({"status", "status_reason", "status_changed_at", "status_changed_by"})
    PII_FIELDS = frozenset({"pii_status", "pii_types"})
    MUTABLE_FIELDS = GOVERNANCE_FIELDS | STATUS_FIELDS | PII_FIELDS | {"facts_version"}

    dataset = models.ForeignKey(Dataset, on_delete=models.PROTECT, related_name="versions")
    number = models.PositiveIntegerField()
    sha256 = models.CharField(max_length=64, validators=[sha256_validator])
    size_bytes = models.PositiveBigIntegerField()
    record_count = models.PositiveBigIntegerField()
    format = models.CharField(max_length=16, choices=DataFormat.choices)
    layout = models.CharField(max_length=32, choices=RecordLayout.choices)
    fields = models.JSONField(
        default=list, help_text='Detected fields: [{"name", "type", "text"}], in file order.'
    )
    text_fields = models.JSONField(default=list, help_text="Names of the fields that hold text.")
    storage_uri = models.CharField(max_length=1024, help_text="Where the bytes are stored.")
    source_uri = models.CharField(
        max_length=1024, blank=True, help_text="Where the bytes were registered from, if by URI."
    )
    original_filename = models.CharField(max_length=255, blank=True)
    derived_from = models.ForeignKey(
        "self",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="derivatives",
        help_text="The version this one was made from (e.g. by redaction).",
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", null=True
    )
    created_at = models.DateTimeField(auto_now_add=True)

    # Status: changed only by revoke / expire actions.
    status = models.CharField(max_length=16, choices=VersionStatus.choices, default=VersionStatus.ACTIVE)
    status_reason = models.TextField(blank=True)
    status_changed_at = models.DateTimeField(null=True, blank=True)
    status_changed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", null=True, blank=True
    )

    # Governance metadata: changed only by recorded actions.
    licence = models.CharField(max_length=64, help_text="SPDX id, or proprietary / other.")
    licence_text = models.TextField(blank=True, help_text="Required for proprietary and other.")
    copyright_holder = models.CharField(max_length=200, blank=True)
    permits_training = models.BooleanField(default=False)
    permits_commercial_use = models.BooleanField(default=False)
    requires_attribution = models.BooleanField(default=True)
    requires_share_alike = models.BooleanField(default=False)
    permissions_overridden = models.BooleanField(
        default=False, help_text="True when a steward set the permissions instead of the licence."
    )
    allowed_purposes = models.JSONField(
        default=list, blank=True, help_text="Purposes the data may serve; empty means none declared."
    )
    consent_basis = models.CharField(
        max_length=32, choices=ConsentBasis.choices, default=ConsentBasis.UNSPECIFIED
    )
    residency_regions = models.JSONField(
        default=list, blank=True, help_text="Regions the data (and models from it) may be served in."
    )
    expires_at = models.DateField(null=True, blank=True)
    notes = models.TextField(blank=True)

    # PII facts, filled by the scanner and the steward's review.
    pii_status = models.CharField(max_length=16, choices=PiiStatus.choices, default=PiiStatus.UNSCANNED)
    pii_types = models.JSONField(default=list, blank=True, help_text="Confirmed PII entity types.")

    # Bumped on every change of a fact, so caches know when to refresh.
    facts_version = models.PositiveIntegerField(default=1)

    class Meta:
        ordering = ["dataset__name", "-number"]
        constraints = [
            models.UniqueConstraint(fields=["dataset", "number"], name="unique_version_number"),
            models.UniqueConstraint(fields=["dataset", "sha256"], name="unique_version_content"),
            models.CheckConstraint(
                condition=Q(status__in=VersionStatus.values), name="version_status_valid"
            ),
            models.CheckConstraint(condition=Q(number__gte=1), name="version_number_positive"),
        ]
        indexes = [models.Index(fields=["sha256"]), models.Index(fields=["status"])]

    def __str__(self) -> str:
        return f"{self.dataset.name} v{self.number}"

    @property
    def label(self) -> str:
        return f"{self.dataset.name} v{self.number}"

    @property
    def storage_key(self) -> str:
        from pedigree.storage import content_key

        return content_key(self.sha256)

    def save(self, *args: Any, **kwargs: Any) -> None:
        """Refuse any write to a stored version that is not a named mutable field."""
        if not self._state.adding:
            update_fields = kwargs.get("update_fields")
            if update_fields is None:
                raise ImmutableField(
                    f"dataset version {self.pk} is immutable: save it with update_fields naming "
                    "governance or status fields, through a governance service",
                )
            forbidden = set(update_fields) - self.MUTABLE_FIELDS
            if forbidden:
                raise ImmutableField(
                    f"dataset version {self} cannot change {', '.join(sorted(forbidden))}: "
                    "content fields are immutable; upload a new version instead",
                    field=sorted(forbidden)[0],
                )
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        raise ImmutableField(f"dataset version {self} cannot be deleted; revoke it instead")

    def governance_snapshot(self) -> dict[str, Any]:
        """The governance fields as plain JSON values (for audit rows and diffs)."""
        snapshot: dict[str, Any] = {}
        for name in sorted(self.GOVERNANCE_FIELDS):
            value = getattr(self, name)
            snapshot[name] = value.isoformat() if hasattr(value, "isoformat") else value
        return snapshot


class DatasetTransfer(models.Model):
    """A request to hand a dataset to another team and/or steward.

    Ownership is governance: the owning team and steward decide who may read
    the data and whose policies apply to what is trained on it. A team member
    (or the steward) asks, with a reason; the receiving side (a member of the
    receiving team, or the new steward when only the steward changes) accepts
    or declines; admins may do either. Only an accepted request changes the
    dataset, through ``governance.services``.
    """

    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="transfers")
    from_group = models.ForeignKey(Group, on_delete=models.PROTECT, related_name="+")
    to_group = models.ForeignKey(Group, on_delete=models.PROTECT, related_name="+")
    from_steward = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    to_steward = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    reason = models.TextField(help_text="Why the dataset should change hands.")
    status = models.CharField(max_length=16, choices=TransferStatus.choices, default=TransferStatus.PENDING)
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    requested_at = models.DateTimeField(auto_now_add=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", null=True, blank=True
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    decision_reason = models.TextField(blank=True)

    class Meta:
        ordering = ["-requested_at", "-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["dataset"],
                condition=Q(status="pending"),
                name="one_pending_transfer_per_dataset",
            ),
        ]

    def __str__(self) -> str:
        return f"transfer #{self.pk} of {self.dataset.name} to {self.to_group.name}/{self.to_steward}"
