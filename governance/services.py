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

from governance.choices import AuditAction, ConsentBasis, Purpose, Region, VersionStatus
from governance.ingest.pipeline import IngestResult, ingest_stream
from governance.licences import get_licence
from governance.lineage import openlineage as lineage_events
from governance.lineage import services as lineage
from governance.lineage.status import dataset_version_status
from governance.models import Dataset, DatasetVersion
from governance.models.audit import record_audit_event
from governance.pii.scans import on_version_created as pii_on_version_created
from pedigree.errors import Conflict, InvalidInput, NotFound, PermissionDenied
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
    """Create a dataset. The actor must belong to the owning group (or be staff)."""
    if not actor.is_authenticated:
        raise PermissionDenied("sign in to create datasets")
    if not (actor.is_staff or actor.groups.filter(pk=owner_group.pk).exists()):
        raise PermissionDenied(
            f"{actor.get_username()} is not a member of {owner_group.name} and cannot create "
            "a dataset owned by it"
        )
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
        dataset.save()
        record_audit_event(
            actor=actor,
            action=AuditAction.DATASET_CREATED,
            target=dataset,
            changes={"owner_group": owner_group.name, "steward": dataset.steward.get_username()},
        )
    return dataset


DATASET_EDITABLE_FIELDS = ("title", "description", "domain", "labels", "owner_group", "steward")


def do_update_dataset(*, actor: User, dataset: Dataset, changes: dict[str, Any], reason: str = "") -> Dataset:
    """Change a dataset's descriptive fields, owner group or steward."""
    ensure_may(actor, dataset, "change")
    unknown = set(changes) - set(DATASET_EDITABLE_FIELDS)
    if unknown:
        raise InvalidInput(f"cannot change {', '.join(sorted(unknown))} of a dataset", field=sorted(unknown)[0])
    diff: dict[str, list[Any]] = {}
    for name, value in changes.items():
        old = getattr(dataset, name)
        if old != value:
            diff[name] = [_plain(old), _plain(value)]
            setattr(dataset, name, value)
    if not diff:
        return dataset
    dataset.full_clean()
    with transaction.atomic(durable=True):
        dataset.save()
        record_audit_event(
            actor=actor, action=AuditAction.DATASET_UPDATED, target=dataset, reason=reason, changes=diff
        )
        if "owner_group" in diff or "steward" in diff:
            # Owners and steward are policy facts of every version: a new
            # facts version tells decision caches that these facts changed.
            dataset.versions.update(facts_version=F("facts_version") + 1)
        if "owner_group" in diff:  # owners are a lineage fact of every version
            for version in dataset.versions.all():
                lineage.on_dataset_version_changed(version, actor=actor, reason=reason)
    return dataset


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


def governance_fields(given: GovernanceInput, *, override_reason: str = "") -> dict[str, Any]:
    """Validate governance metadata and return the model field values.

    Permissions come from the licence unless the steward overrides some of them,
    which needs a reason.
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
    current = governance_input_of(version)
    if "licence" in changes and "permissions" not in changes:
        current.permissions = {}
    for name, value in changes.items():
        setattr(current, name, value)
    keep_expiry = "expires_at" not in changes
    if keep_expiry:
        # An unchanged expiry that has since passed must not block other edits.
        saved_expiry, current.expires_at = current.expires_at, None
    new_fields = governance_fields(current, override_reason=reason)
    if keep_expiry:
        new_fields["expires_at"] = saved_expiry
    before = version.governance_snapshot()
    for name, value in new_fields.items():
        setattr(version, name, value)
    after = version.governance_snapshot()
    diff = {name: [before[name], after[name]] for name in after if before[name] != after[name]}
    if not diff:
        return version
    with transaction.atomic(durable=True):
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
    fields = governance_fields(governance, override_reason=override_reason)
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
            return IngestOutcome(existing, created=False)
        try:
            with transaction.atomic(durable=True):
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


def open_registered_source(uri: str) -> tuple[IO[bytes], str]:
    """Open data that is already on local disk or in S3, for registration by URI.

    Local paths must lie inside ``PEDIGREE_IMPORT_ROOTS``; S3 buckets must be in
    ``PEDIGREE_IMPORT_BUCKETS`` (``*`` allows any).
    """
    parsed = urlparse(uri)
    if parsed.scheme in {"", "file"}:
        path = Path(parsed.path if parsed.scheme == "file" else uri).resolve()
        roots = [Path(root).resolve() for root in settings.PEDIGREE_IMPORT_ROOTS]
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
        buckets = settings.PEDIGREE_IMPORT_BUCKETS
        if "*" not in buckets and parsed.netloc not in buckets:
            raise InvalidInput(f"bucket {parsed.netloc!r} is not an allowed import bucket", field="uri")
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
    governance_fields(governance, override_reason=override_reason)
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
