"""Catalog workflows: every change to a dataset or version goes through here.

Each ``do_<verb>`` checks who may act, validates input before touching
anything, changes rows in one durable transaction, and writes an audit event
saying who did what, when and why. Views, admin actions, management commands
and Celery tasks all call these functions, so they are governed alike.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import logging
import posixpath
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlparse

from django.conf import settings
from django.contrib.auth.models import Group
from django.db import IntegrityError, transaction
from django.db.models import F, Max
from django.utils import timezone

from governance.choices import (
    AuditAction,
    ConsentBasis,
    Purpose,
    Region,
    TransferStatus,
    VersionStatus,
)
from governance.ingest.pipeline import IngestResult, ingest_stream
from governance.licences import get_licence
from governance.lineage import openlineage as lineage_events
from governance.lineage import services as lineage
from governance.lineage.status import dataset_version_status
from governance.models import Dataset, DatasetTransfer, DatasetVersion
from governance.models.audit import lock_for_governed_write, record_audit_event
from governance.pii.scans import on_version_created as pii_on_version_created
from pedigree.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from pedigree.roles import is_admin
from pedigree.storage import BlobNotFound, content_key, get_store, s3_client
from pedigree.types import Actor
from pedigree.types import User as UserModel

logger = logging.getLogger(__name__)

User = Actor

PERMISSION_NAMES = ("training", "commercial_use", "attribution", "share_alike")
_PERMISSION_FIELDS = {
    "training": "permits_training",
    "commercial_use": "permits_commercial_use",
    "attribution": "requires_attribution",
    "share_alike": "requires_share_alike",
}


def ensure_may(actor: User, dataset: Dataset, action: str) -> None:
    """Raise ``PermissionDenied`` unless ``actor`` may ``action`` the dataset."""
    if not dataset.may(actor, action):
        who = actor.get_username() if actor.is_authenticated else "an anonymous user"
        raise PermissionDenied(
            f"{who} may not {action} dataset {dataset.name}: only its steward, members of "
            f"{dataset.owner_group.name} and admins may",
            field="dataset",
        )


# --- Datasets ---------------------------------------------------------------------


def do_create_dataset(
    *,
    actor: User,
    name: str,
    owner_group: Group,
    steward: UserModel | None = None,
    title: str = "",
    description: str = "",
    domain: str = "",
    labels: dict[str, str] | None = None,
) -> Dataset:
    """Create a dataset. The actor must belong to the owning group (or be an admin)."""
    check_may_create_dataset(actor, owner_group)
    assert isinstance(actor, UserModel)  # signed in: checked above
    dataset = Dataset(
        name=name,
        owner_group=owner_group,
        steward=steward or actor,
        title=title,
        description=description,
        domain=domain,
        labels=labels or {},
        created_by=actor,
    )
    dataset.full_clean()
    with transaction.atomic(durable=True):
        lock_for_governed_write()
        dataset.save()
        record_audit_event(
            actor=actor,
            action=AuditAction.DATASET_CREATED,
            target=dataset,
            changes={"owner_group": owner_group.name, "steward": dataset.steward.get_username()},
        )
    return dataset


DATASET_EDITABLE_FIELDS = ("title", "description", "domain", "labels", "owner_group", "steward")
OWNERSHIP_FIELDS = ("owner_group", "steward")


def do_update_dataset(*, actor: User, dataset: Dataset, changes: dict[str, Any], reason: str = "") -> Dataset:
    """Change a dataset's descriptive fields, owner group or steward.

    Descriptive fields: the owning team, the steward or an admin. Owner group
    and steward are governance (who may read the data, whose policies apply
    to what is trained on it): only an admin changes them here, with a
    reason; anyone else asks with ``do_request_dataset_transfer`` and the
    receiving side accepts. The row is locked before it is diffed, so two
    concurrent edits cannot lose one another or audit a stale "before".
    """
    ensure_may(actor, dataset, "change")
    unknown = set(changes) - set(DATASET_EDITABLE_FIELDS)
    if unknown:
        raise InvalidInput(f"cannot change {', '.join(sorted(unknown))} of a dataset", field=sorted(unknown)[0])
    with transaction.atomic(durable=True):
        lock_for_governed_write()
        locked = Dataset.objects.select_for_update().get(pk=dataset.pk)
        diff: dict[str, list[Any]] = {}
        for name, value in changes.items():
            old = getattr(locked, name)
            if old != value:
                diff[name] = [_plain(old), _plain(value)]
                setattr(locked, name, value)
        if not diff:
            return locked
        ownership = sorted(set(diff) & set(OWNERSHIP_FIELDS))
        if ownership:
            check_ownership_change(
                actor=actor, dataset=locked, changed=ownership, owner_group=locked.owner_group,
                steward=locked.steward, reason=reason,
            )
        locked.full_clean()
        locked.save()
        record_audit_event(
            actor=actor,
            action=AuditAction.DATASET_OWNERSHIP_CHANGED if ownership else AuditAction.DATASET_UPDATED,
            target=locked,
            reason=reason,
            changes=diff,
        )
        if ownership:
            _ownership_changed(locked, actor=actor, reason=reason)
    return locked


def check_ownership_change(
    *, actor: User, dataset: Dataset, changed: list[str], owner_group: Group, steward: UserModel, reason: str
) -> None:
    """Raise unless ``actor`` may give ``dataset`` this owner group and steward
    directly: an admin, with a reason, naming a steward from the owning team.
    (The console's form asks the same before it saves.)"""
    if not is_admin(actor):
        raise PermissionDenied(
            f"changing the {' and '.join(changed)} of dataset {dataset.name} needs an admin; "
            f"or request a transfer (POST /api/v1/datasets/{dataset.name}/transfers/) that the "
            "receiving team accepts",
            field=changed[0],
        )
    if not reason.strip():
        raise InvalidInput(
            f"a reason is required to change the {' and '.join(changed)} of dataset {dataset.name}",
            field="reason",
        )
    _check_steward_in_team(steward, owner_group)


def check_may_create_dataset(actor: User, owner_group: Group) -> None:
    """Raise unless ``actor`` may create a dataset owned by ``owner_group``."""
    if not actor.is_authenticated:
        raise PermissionDenied("sign in to create datasets")
    if not (is_admin(actor) or actor.groups.filter(pk=owner_group.pk).exists()):
        raise PermissionDenied(
            f"{actor.get_username()} is not a member of {owner_group.name} and cannot create "
            "a dataset owned by it",
            field="owner_group",
        )


def _check_steward_in_team(steward: UserModel, group: Group) -> None:
    """The steward must belong to the owning team (or be an admin): a steward
    left behind in the old team would keep the old team's access."""
    if is_admin(steward) or steward.groups.filter(pk=group.pk).exists():
        return
    raise InvalidInput(
        f"{steward.get_username()} is not a member of {group.name}: name a steward from the team that "
        "will own the dataset",
        field="steward",
    )


def _ownership_changed(dataset: Dataset, *, actor: User, reason: str) -> None:
    """Owners and steward are policy facts of every version: bump each
    version's facts version (decision caches miss) and refresh its lineage
    node and everything downstream now, in the same transaction."""
    dataset.versions.update(facts_version=F("facts_version") + 1)
    for version in dataset.versions.order_by("pk"):
        lineage.on_dataset_version_changed(version, actor=actor, reason=reason)


# --- Ownership transfers ----------------------------------------------------------


def do_request_dataset_transfer(
    *, actor: User, dataset: Dataset, owner_group: Group, steward: UserModel, reason: str
) -> DatasetTransfer:
    """Ask to hand ``dataset`` to ``owner_group`` with ``steward``: nothing
    changes until the receiving side accepts (``do_accept_dataset_transfer``)."""
    ensure_may(actor, dataset, "change")
    if not reason.strip():
        raise InvalidInput(f"a reason is required to transfer dataset {dataset.name}", field="reason")
    if owner_group.pk == dataset.owner_group_id and steward.pk == dataset.steward_id:
        raise InvalidInput(
            f"dataset {dataset.name} is already owned by {owner_group.name} with steward "
            f"{steward.get_username()}: nothing to transfer",
            field="owner_group",
        )
    _check_steward_in_team(steward, owner_group)
    with transaction.atomic(durable=True):
        lock_for_governed_write()
        locked = Dataset.objects.select_for_update().get(pk=dataset.pk)
        pending = DatasetTransfer.objects.filter(dataset=locked, status=TransferStatus.PENDING).first()
        if pending is not None:
            raise Conflict(
                f"dataset {locked.name} already has a pending transfer (#{pending.pk}) to "
                f"{pending.to_group.name}: cancel it first",
                transfer=pending.pk,
            )
        transfer = DatasetTransfer.objects.create(
            dataset=locked,
            from_group=locked.owner_group,
            to_group=owner_group,
            from_steward=locked.steward,
            to_steward=steward,
            reason=reason.strip(),
            requested_by=actor,  # type: ignore[misc]  # signed in: ensure_may refused anonymous users
        )
        record_audit_event(
            actor=actor,
            action=AuditAction.TRANSFER_REQUESTED,
            target=locked,
            reason=reason,
            changes={
                "transfer": transfer.pk,
                "owner_group": [locked.owner_group.name, owner_group.name],
                "steward": [locked.steward.get_username(), steward.get_username()],
            },
        )
    return transfer


def may_accept_transfer(actor: User, transfer: DatasetTransfer) -> bool:
    """The receiving side: a member of the receiving team (the new steward
    when only the steward changes), never the requester; or an admin."""
    if not actor.is_authenticated:
        return False
    if is_admin(actor):
        return True
    if actor.pk == transfer.requested_by_id:
        return False
    if transfer.to_group_id == transfer.from_group_id:
        return bool(actor.pk == transfer.to_steward_id)
    return bool(actor.groups.filter(pk=transfer.to_group_id).exists())


def _pending(transfer: DatasetTransfer) -> DatasetTransfer:
    locked = DatasetTransfer.objects.select_for_update().get(pk=transfer.pk)
    if locked.status != TransferStatus.PENDING:
        raise Conflict(f"transfer #{locked.pk} of {locked.dataset.name} is already {locked.status}", transfer=locked.pk)
    return locked


def do_accept_dataset_transfer(*, actor: User, transfer: DatasetTransfer, reason: str = "") -> Dataset:
    """The receiving side accepts: the dataset changes hands now (audited,
    every version's facts version bumped, lineage refreshed at once), and the
    old team loses access with the ownership."""
    if not may_accept_transfer(actor, transfer):
        who = actor.get_username() if actor.is_authenticated else "an anonymous user"
        receiver = (
            transfer.to_steward.get_username()
            if transfer.to_group_id == transfer.from_group_id
            else f"a member of {transfer.to_group.name} other than the requester"
        )
        raise PermissionDenied(f"{who} may not accept transfer #{transfer.pk}: only {receiver} or an admin may")
    with transaction.atomic(durable=True):
        lock_for_governed_write()
        dataset = Dataset.objects.select_for_update().get(pk=transfer.dataset_id)
        locked = _pending(transfer)
        if (dataset.owner_group_id, dataset.steward_id) != (locked.from_group_id, locked.from_steward_id):
            raise Conflict(
                f"dataset {dataset.name} changed owner or steward since transfer #{locked.pk} was requested; "
                "request it again",
                transfer=locked.pk,
            )
        _check_steward_in_team(locked.to_steward, locked.to_group)
        diff: dict[str, list[Any]] = {}
        if dataset.owner_group_id != locked.to_group_id:
            diff["owner_group"] = [dataset.owner_group.name, locked.to_group.name]
        if dataset.steward_id != locked.to_steward_id:
            diff["steward"] = [dataset.steward.get_username(), locked.to_steward.get_username()]
        dataset.owner_group = locked.to_group
        dataset.steward = locked.to_steward
        dataset.save(update_fields=["owner_group", "steward", "updated_at"])
        locked.status = TransferStatus.ACCEPTED
        locked.decided_by = actor  # type: ignore[assignment]  # signed in: checked above
        locked.decided_at = timezone.now()
        locked.decision_reason = reason.strip()
        locked.save(update_fields=["status", "decided_by", "decided_at", "decision_reason"])
        why = f"{locked.reason} (transfer #{locked.pk} accepted by {actor.get_username()})"
        record_audit_event(
            actor=actor,
            action=AuditAction.DATASET_OWNERSHIP_CHANGED,
            target=dataset,
            reason=why,
            changes={**diff, "transfer": locked.pk, "requested_by": locked.requested_by.get_username()},
        )
        _ownership_changed(dataset, actor=actor, reason=why)
    return dataset


def do_decline_dataset_transfer(*, actor: User, transfer: DatasetTransfer, reason: str) -> DatasetTransfer:
    """The receiving side declines (or the requesting side cancels) a pending transfer."""
    receiving = may_accept_transfer(actor, transfer)
    sending = transfer.dataset.may(actor, "change")
    if not (receiving or sending):
        raise PermissionDenied(f"{actor.get_username()} may not decline or cancel transfer #{transfer.pk}")
    if not reason.strip():
        raise InvalidInput(f"a reason is required to decline or cancel transfer #{transfer.pk}", field="reason")
    with transaction.atomic(durable=True):
        lock_for_governed_write()
        locked = _pending(transfer)
        locked.status = TransferStatus.DECLINED if receiving else TransferStatus.CANCELLED
        locked.decided_by = actor  # type: ignore[assignment]  # signed in: checked above
        locked.decided_at = timezone.now()
        locked.decision_reason = reason.strip()
        locked.save(update_fields=["status", "decided_by", "decided_at", "decision_reason"])
        record_audit_event(
            actor=actor,
            action=AuditAction.TRANSFER_DECLINED if receiving else AuditAction.TRANSFER_CANCELLED,
            target=locked.dataset,
            reason=reason,
            changes={"transfer": locked.pk},
        )
    return locked


def _plain(value: Any) -> Any:
    if isinstance(value, Group | UserModel):
        return str(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


# --- Governance metadata ----------------------------------------------------------


@dataclass
class GovernanceInput:
    """Governance metadata as given by a steward, before validation."""

    licence: str
    licence_text: str = ""
    copyright_holder: str = ""
    permissions: dict[str, bool] = field(default_factory=dict)
    allowed_purposes: list[str] = field(default_factory=list)
    consent_basis: str = ConsentBasis.UNSPECIFIED
    residency_regions: list[str] = field(default_factory=list)
    expires_at: dt.date | None = None
    notes: str = ""


# What each permission means when it is true: "permits" loosens, "requires" restricts.
_LOOSER_WHEN = {"training": True, "commercial_use": True, "attribution": False, "share_alike": False}


def governance_fields(
    given: GovernanceInput,
    *,
    actor: User | None,
    override_reason: str = "",
    in_force: dict[str, bool] | None = None,
) -> dict[str, Any]:
    """Validate governance metadata and return the model field values.

    Permissions come from the licence unless someone overrides some of them,
    which needs a reason. Making them stricter than the licence (no training,
    attribution required) is the steward's call; granting more than the
    licence does (commercial use of CC-BY-NC data, say) needs an admin.
    ``in_force``: the permissions the version has now; an admin's earlier
    grant that stays as it is needs no admin again.
    """
    licence = get_licence(given.licence.strip()) if given.licence else None
    if licence is None:
        raise InvalidInput(
            f"unknown licence {given.licence!r}: use an SPDX id from GET /api/v1/licences/, "
            "or 'proprietary' / 'other' with the licence text",
            field="licence",
        )
    if licence.requires_text and not given.licence_text.strip():
        raise InvalidInput(f"licence {licence.id!r} needs the licence text", field="licence_text")
    unknown_permissions = set(given.permissions) - set(PERMISSION_NAMES)
    if unknown_permissions:
        raise InvalidInput(
            f"unknown permission {sorted(unknown_permissions)[0]!r}: use {', '.join(PERMISSION_NAMES)}",
            field="permissions",
        )
    derived = licence.permissions.as_dict()
    overridden = {name: value for name, value in given.permissions.items() if derived[name] != value}
    if overridden and not override_reason.strip():
        raise InvalidInput(
            f"overriding what {licence.id} permits ({', '.join(sorted(overridden))}) needs a reason",
            field="reason",
        )
    loosened = sorted(
        name
        for name, value in overridden.items()
        if value == _LOOSER_WHEN[name] and (in_force is None or in_force.get(name) != value)
    )
    if loosened and not is_admin(actor):
        who = actor.get_username() if actor is not None and actor.is_authenticated else "the system"
        raise PermissionDenied(
            f"{who} may not grant more than licence {licence.id} does ({', '.join(loosened)}): "
            "only an admin may override a licence's terms in that direction",
            field="permissions",
        )
    for purpose in given.allowed_purposes:
        if purpose not in Purpose.values:
            raise InvalidInput(
                f"unknown purpose {purpose!r}: use {', '.join(Purpose.values)}", field="allowed_purposes"
            )
    for region in given.residency_regions:
        if region not in Region.values:
            raise InvalidInput(
                f"unknown region {region!r}: use {', '.join(Region.values)}", field="residency_regions"
            )
    if given.consent_basis not in ConsentBasis.values:
        raise InvalidInput(
            f"unknown consent basis {given.consent_basis!r}: use {', '.join(ConsentBasis.values)}",
            field="consent_basis",
        )
    if given.expires_at is not None and given.expires_at <= timezone.localdate():
        raise InvalidInput(
            f"expiry date {given.expires_at.isoformat()} is not in the future", field="expires_at"
        )
    permissions = {**derived, **given.permissions}
    return {
        "licence": licence.id,
        "licence_text": given.licence_text.strip(),
        "copyright_holder": given.copyright_holder.strip(),
        "permits_training": permissions["training"],
        "permits_commercial_use": permissions["commercial_use"],
        "requires_attribution": permissions["attribution"],
        "requires_share_alike": permissions["share_alike"],
        "permissions_overridden": bool(overridden),
        "allowed_purposes": sorted(set(given.allowed_purposes)),
        "consent_basis": given.consent_basis,
        "residency_regions": sorted(set(given.residency_regions)),
        "expires_at": given.expires_at,
        "notes": given.notes,
    }


def governance_input_of(version: DatasetVersion) -> GovernanceInput:
    """A version's current governance metadata as an editable input."""
    return GovernanceInput(
        licence=version.licence,
        licence_text=version.licence_text,
        copyright_holder=version.copyright_holder,
        permissions={name: getattr(version, column) for name, column in _PERMISSION_FIELDS.items()}
        if version.permissions_overridden
        else {},
        allowed_purposes=list(version.allowed_purposes),
        consent_basis=version.consent_basis,
        residency_regions=list(version.residency_regions),
        expires_at=version.expires_at,
        notes=version.notes,
    )


def do_update_version_governance(
    *, actor: User, version: DatasetVersion, changes: dict[str, Any], reason: str
) -> DatasetVersion:
    """Change a version's governance metadata, recording who, when, what and why.

    ``changes`` holds any of ``GovernanceInput``'s fields; a new licence
    re-derives the permissions unless ``permissions`` is given too.
    """
    ensure_may(actor, version.dataset, "change")
    if not reason.strip():
        raise InvalidInput("a reason is required to change governance metadata", field="reason")
    unknown = set(changes) - set(GovernanceInput.__dataclass_fields__)
    if unknown:
        raise InvalidInput(f"cannot change {', '.join(sorted(unknown))}", field=sorted(unknown)[0])
    with transaction.atomic(durable=True):
        lock_for_governed_write()
        # Locked before it is read and diffed: a concurrent edit cannot be lost
        # or leave this change's audit "before" stale.
        version = DatasetVersion.objects.select_for_update().select_related("dataset").get(pk=version.pk)
        current = governance_input_of(version)
        if "licence" in changes and "permissions" not in changes:
            current.permissions = {}
        for name, value in changes.items():
            setattr(current, name, value)
        keep_expiry = "expires_at" not in changes
        if keep_expiry:
            # An unchanged expiry that has since passed must not block other edits.
            saved_expiry, current.expires_at = current.expires_at, None
        # An admin's earlier grant carries over only while the licence stays the same.
        in_force = (
            {name: getattr(version, column) for name, column in _PERMISSION_FIELDS.items()}
            if current.licence == version.licence
            else None
        )
        new_fields = governance_fields(current, actor=actor, override_reason=reason, in_force=in_force)
        if keep_expiry:
            new_fields["expires_at"] = saved_expiry
        before = version.governance_snapshot()
        for name, value in new_fields.items():
            setattr(version, name, value)
        after = version.governance_snapshot()
        diff = {name: [before[name], after[name]] for name in after if before[name] != after[name]}
        if not diff:
            return version
        version.facts_version = F("facts_version") + 1
        version.save(update_fields=[*new_fields, "facts_version"])
        lineage.on_dataset_version_changed(version, actor=actor, reason=reason)
        record_audit_event(
            actor=actor,
            action=AuditAction.VERSION_GOVERNANCE_UPDATED,
            target=version,
            reason=reason,
            changes=diff,
        )
    version.refresh_from_db()
    return version


def do_revoke_dataset_version(*, actor: User, version: DatasetVersion, reason: str) -> DatasetVersion:
    """Revoke a version: it may no longer be read or trained on, and what was
    made from it is quarantined (through lineage)."""
    ensure_may(actor, version.dataset, "change")
    if not reason.strip():
        raise InvalidInput("a reason is required to revoke a dataset version", field="reason")
    with transaction.atomic(durable=True):
        lock_for_governed_write()
        version = DatasetVersion.objects.select_for_update().get(pk=version.pk)
        if version.status == VersionStatus.REVOKED:
            raise Conflict(f"{version} is already revoked")
        previous = version.status
        version.status = VersionStatus.REVOKED
        version.status_reason = reason
        version.status_changed_at = timezone.now()
        version.status_changed_by = actor if actor.is_authenticated else None
        version.facts_version = F("facts_version") + 1
        version.save(update_fields=[*DatasetVersion.STATUS_FIELDS, "facts_version"])
        lineage.on_dataset_version_changed(version, actor=actor, reason=reason)  # quarantine downstream
        record_audit_event(
            actor=actor,
            action=AuditAction.VERSION_REVOKED,
            target=version,
            reason=reason,
            changes={"status": [previous, VersionStatus.REVOKED]},
        )
    version.refresh_from_db()
    return version


def do_expire_dataset_versions(*, today: dt.date | None = None) -> list[DatasetVersion]:
    """Mark every active version whose expiry date has passed as expired."""
    today = today or timezone.localdate()
    expired = []
    for version_id in DatasetVersion.objects.filter(
        status=VersionStatus.ACTIVE, expires_at__lt=today
    ).values_list("pk", flat=True):
        with transaction.atomic(durable=True):
            lock_for_governed_write()
            version = DatasetVersion.objects.select_for_update().get(pk=version_id)
            if version.status != VersionStatus.ACTIVE:
                continue
            version.status = VersionStatus.EXPIRED
            version.status_reason = f"expiry date {version.expires_at} passed"
            version.status_changed_at = timezone.now()
            version.facts_version = F("facts_version") + 1
            version.save(update_fields=[*DatasetVersion.STATUS_FIELDS, "facts_version"])
            lineage.on_dataset_version_changed(version, actor=None, reason=version.status_reason)
            record_audit_event(
                actor=None,
                action=AuditAction.VERSION_EXPIRED,
                target=version,
                reason=version.status_reason,
                changes={"status": [VersionStatus.ACTIVE, VersionStatus.EXPIRED]},
            )
        version.refresh_from_db()
        expired.append(version)
    lineage.do_lineage_housekeeping()  # lapsed quarantine exceptions, missed syncs
    return expired


# --- Ingest -------------------------------------------------------------------------


@dataclass
class IngestOutcome:
    """The version an ingest produced, and whether it is new."""

    version: DatasetVersion
    created: bool


def do_ingest_dataset_version(
    *,
    actor: User,
    dataset: Dataset,
    source: IO[bytes],
    filename: str,
    governance: GovernanceInput,
    override_reason: str = "",
    declared_format: str | None = None,
    expected_sha256: str | None = None,
    source_uri: str = "",
    on_progress: Callable[[int], None] | None = None,
) -> IngestOutcome:
    """Stream a file into the catalog as a new immutable version of ``dataset``.

    The same bytes uploaded again return the existing version. Governance input
    is checked before a byte is read; a file that fails validation leaves no
    version and no blob.
    """
    ensure_may(actor, dataset, "change")
    fields = governance_fields(governance, actor=actor, override_reason=override_reason)
    store = get_store()
    run = lineage_events.start_ingest_run(dataset=dataset, filename=filename, source_uri=source_uri)
    try:
        result = ingest_stream(
            source,
            filename=filename,
            store=store,
            max_bytes=settings.PEDIGREE_MAX_UPLOAD_BYTES,
            max_record_bytes=settings.PEDIGREE_MAX_RECORD_BYTES,
            declared_format=declared_format,
            expected_sha256=expected_sha256,
            on_progress=on_progress,
        )
    except BaseException as error:
        run.fail(error)
        raise
    try:
        outcome = _record_version(actor, dataset, result, fields, filename, source_uri)
        lineage_events.complete_ingest_run(run, outcome.version, created=outcome.created)
        return outcome
    except BaseException as error:
        run.fail(error)
        if not result.already_stored and not DatasetVersion.objects.filter(sha256=result.sha256).exists():
            with contextlib.suppress(Exception):
                store.delete(content_key(result.sha256))
        raise


def next_version(
    *,
    dataset: Dataset,
    result: IngestResult,
    filename: str,
    actor: User | None,
    source_uri: str = "",
    derived_from: DatasetVersion | None = None,
    **governance: Any,
) -> DatasetVersion:
    """The unsaved next version of ``dataset`` for a stored, validated blob.

    Locks the dataset row so two writers cannot take the same number; call it
    inside the transaction that saves the version.
    """
    Dataset.objects.select_for_update().filter(pk=dataset.pk).first()
    number = (dataset.versions.aggregate(n=Max("number"))["n"] or 0) + 1
    return DatasetVersion(
        dataset=dataset,
        number=number,
        sha256=result.sha256,
        size_bytes=result.size_bytes,
        record_count=result.layout.record_count,
        format=result.layout.format,
        layout=result.layout.layout,
        fields=result.layout.fields,
        text_fields=result.layout.text_fields,
        storage_uri=result.storage_uri,
        source_uri=source_uri,
        original_filename=Path(filename).name[:255],
        derived_from=derived_from,
        created_by=actor if actor is not None and actor.is_authenticated else None,
        **governance,
    )


# Governance fields an upload of bytes already catalogued must agree with.
_COMPARED_ON_REUPLOAD = tuple(sorted(DatasetVersion.GOVERNANCE_FIELDS - {"notes"}))


def _existing_version(existing: DatasetVersion, fields: dict[str, Any]) -> IngestOutcome:
    """The same bytes again: the existing version, if the upload says the same
    about them; a 409 naming each difference if not (never a silent keep)."""
    differences = []
    for name in _COMPARED_ON_REUPLOAD:
        stored, given = getattr(existing, name), fields.get(name)
        if isinstance(stored, list) and isinstance(given, list):
            stored, given = sorted(stored), sorted(given)
        if stored != given:
            differences.append((name, stored, given))
    if differences:
        described = "; ".join(f"{name} is {_plain(stored)!r}, this upload says {_plain(given)!r}" for name, stored, given in differences)
        raise Conflict(
            f"these bytes are already {existing.label} with other governance metadata ({described}); "
            f"change {existing.label}'s metadata with a reason (POST .../versions/{existing.number}/governance/) "
            "instead of uploading it again",
            field=differences[0][0],
            version=existing.number,
            differences={name: {"stored": _plain(stored), "given": _plain(given)} for name, stored, given in differences},
        )
    return IngestOutcome(existing, created=False)


def _record_version(
    actor: User,
    dataset: Dataset,
    result: IngestResult,
    fields: dict[str, Any],
    filename: str,
    source_uri: str,
) -> IngestOutcome:
    for attempt in range(3):
        existing = DatasetVersion.objects.filter(dataset=dataset, sha256=result.sha256).first()
        if existing is not None:
            return _existing_version(existing, fields)
        try:
            with transaction.atomic(durable=True):
                lock_for_governed_write()
                version = next_version(
                    dataset=dataset, result=result, filename=filename, actor=actor, source_uri=source_uri, **fields
                )
                version.save()
                lineage.on_dataset_version_changed(version, actor=actor)
                # Scan each new version for PII once it is committed.
                transaction.on_commit(functools.partial(pii_on_version_created, version.pk))
                record_audit_event(
                    actor=actor,
                    action=AuditAction.VERSION_CREATED,
                    target=version,
                    changes={
                        "sha256": result.sha256,
                        "size_bytes": result.size_bytes,
                        "record_count": result.layout.record_count,
                        "format": result.layout.format,
                        "source": source_uri or filename,
                        **version.governance_snapshot(),
                    },
                )
            return IngestOutcome(version, created=True)
        except IntegrityError:
            # Another ingest of this dataset won the race for the number or the
            # same bytes; look again.
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def _inside_artifact_store(parsed_uri: Any, local_path: Path | None) -> bool:
    """Whether a URI points into Pedigree's own artifact store (any team's blobs)."""
    location = settings.PEDIGREE_ARTIFACTS
    if location.startswith("s3://"):
        if local_path is not None:
            return False
        store = urlparse(location)
        if parsed_uri.netloc != store.netloc:
            return False
        prefix = store.path.strip("/")
        key = parsed_uri.path.lstrip("/")
        normalised = posixpath.normpath(key) if key else key
        return not prefix or any(k == prefix or k.startswith(prefix + "/") for k in (key, normalised))
    if local_path is None:
        return False
    root = Path(urlparse(location).path if location.startswith("file://") else location).resolve()
    return local_path == root or local_path.is_relative_to(root)


def open_registered_source(uri: str) -> tuple[IO[bytes], str]:
    """Open data that is already on local disk or in S3, for registration by URI.

    Local paths must lie inside ``PEDIGREE_IMPORT_ROOTS``; S3 buckets must be in
    ``PEDIGREE_IMPORT_BUCKETS`` (``*`` allows any). Both default to none.
    Pedigree's own artifact store is never a source, whatever they say: its
    blobs belong to other teams' versions (revoked ones too), and copying one
    into another dataset would be a read that no policy decided.
    """
    parsed = urlparse(uri)
    if parsed.scheme in {"", "file"}:
        path = Path(parsed.path if parsed.scheme == "file" else uri).resolve()
        if _inside_artifact_store(parsed, path):
            raise InvalidInput(
                f"{uri} is inside Pedigree's artifact store: register data from outside it "
                "(to reuse a version's bytes, download it where the policies allow)",
                field="uri",
            )
        roots = [Path(root).resolve() for root in settings.PEDIGREE_IMPORT_ROOTS]
        if not roots:
            raise InvalidInput(
                "registering local files is turned off: no import folders are configured "
                "(PEDIGREE_IMPORT_ROOTS); upload the file instead",
                field="uri",
            )
        if not any(path.is_relative_to(root) for root in roots):
            raise InvalidInput(
                f"{uri} is outside the import folders ({', '.join(map(str, roots))}); "
                "move it there or upload it",
                field="uri",
            )
        if not path.is_file():
            raise InvalidInput(f"{uri}: no such file", field="uri")
        return path.open("rb"), path.name
    if parsed.scheme == "s3":
        if _inside_artifact_store(parsed, None):
            raise InvalidInput(
                f"{uri} is inside Pedigree's artifact store: register data from outside it",
                field="uri",
            )
        buckets = settings.PEDIGREE_IMPORT_BUCKETS
        if "*" not in buckets and parsed.netloc not in buckets:
            allowed = ", ".join(buckets) if buckets else "none are configured (PEDIGREE_IMPORT_BUCKETS)"
            raise InvalidInput(
                f"bucket {parsed.netloc!r} is not an allowed import bucket: {allowed}", field="uri"
            )
        client = s3_client(settings.AWS_ENDPOINT_URL)
        try:
            body = client.get_object(Bucket=parsed.netloc, Key=parsed.path.lstrip("/"))["Body"]
        except Exception as error:
            raise InvalidInput(f"{uri} cannot be read: {error}", field="uri") from None
        return body, Path(parsed.path).name
    raise InvalidInput(f"{uri}: use a local path, file:// or s3:// URI", field="uri")


def do_register_dataset_version(
    *,
    actor: User,
    dataset: Dataset,
    uri: str,
    sha256: str,
    governance: GovernanceInput,
    override_reason: str = "",
    declared_format: str | None = None,
) -> IngestOutcome:
    """Register data already on disk or in S3: copy it in, verifying its digest."""
    ensure_may(actor, dataset, "change")
    if not sha256 or len(sha256) != 64:
        raise InvalidInput("registering by URI needs the file's sha256 (64 hex digits)", field="sha256")
    governance_fields(governance, actor=actor, override_reason=override_reason)
    source, filename = open_registered_source(uri)
    try:
        return do_ingest_dataset_version(
            actor=actor,
            dataset=dataset,
            source=source,
            filename=filename,
            governance=governance,
            override_reason=override_reason,
            declared_format=declared_format,
            expected_sha256=sha256,
            source_uri=uri,
        )
    finally:
        source.close()


def do_open_dataset_version(*, actor: User, version: DatasetVersion) -> IO[bytes]:
    """Open a version's bytes for download: a governed, audited read.

    The policy engine decides (``dataset.read``): the steward, the owning team
    and admins may read; a quarantined (revoked or expired) version only admins.
    """
    from policies.decisions import decide

    if not actor.is_authenticated:
        raise PermissionDenied(f"sign in to download {version}")
    decision = decide(actor, "dataset.read", version)
    if not decision.allowed:
        if "quarantine" in decision.policies:
            status = dataset_version_status(version)  # the effective one: a copy of revoked data is quarantined
            why = f": {version.status_reason}" if version.status_reason else ""
            raise Conflict(f"{version} is {status} and cannot be downloaded{why} ({decision.reason})")
        who = actor.get_username()
        raise PermissionDenied(
            f"{who} may not download dataset {version.dataset.name} v{version.number}: {decision.reason}",
            policies=list(decision.policies),
        )
    try:
        stream = get_store().open_read(version.storage_key)
    except BlobNotFound:
        raise NotFound(f"the bytes of {version} are missing from storage") from None
    with transaction.atomic(durable=True):
        record_audit_event(actor=actor, action=AuditAction.VERSION_DOWNLOADED, target=version)
    return stream
