"""A version's PII facts, and what every PII workflow checks first.

The version's PII facts (``pii_status``, ``pii_types``) are derived in one
place, ``refresh_version_pii``, from the version's scans and reviews: the
entity types found and not dismissed by a steward are its PII fact, a status
of unscanned, scanning or scan_failed is the "PII scan incomplete" fact, and
``facts_version`` is bumped and lineage refreshed whenever either changes.
"""

from __future__ import annotations

from django.db import transaction
from django.db.models import F

from governance.choices import PiiStatus
from governance.lineage import services as lineage
from governance.models import DatasetVersion
from governance.models.audit import lock_for_governed_write
from governance.models.pii import (
    ACTIVE_SCAN_STATUSES,
    PiiEntityReview,
    PiiJobStatus,
    PiiRedaction,
    PiiReviewDecision,
    PiiScan,
    PiiScanStatus,
)
from pedigree.errors import PermissionDenied
from pedigree.types import Actor


def ensure_may_change(actor: Actor | None, version: DatasetVersion, what: str) -> None:
    """Raise ``PermissionDenied`` unless ``actor`` may change the version's dataset."""
    if actor is None:
        return  # the system itself (automatic scans, recovery)
    if not version.dataset.may(actor, "change"):
        who = actor.get_username() if actor.is_authenticated else "an anonymous user"
        raise PermissionDenied(
            f"{who} may not {what} of dataset {version.dataset.name}: only its steward, members of "
            f"{version.dataset.owner_group.name} and admins may",
        )



# --- The version's PII facts -------------------------------------------------------------


def latest_completed_scan(version: DatasetVersion) -> PiiScan | None:
    """The version's most recent completed scan: the report its status reflects."""
    return PiiScan.objects.filter(version=version).filter(status=PiiScanStatus.COMPLETED).order_by("-finished_at", "-pk").first()


def latest_finished_scan(version: DatasetVersion) -> PiiScan | None:
    """The version's most recent scan that completed or failed (cancelled ones are as if never asked)."""
    return (
        PiiScan.objects.filter(version=version, status__in=(PiiScanStatus.COMPLETED, PiiScanStatus.FAILED))
        .order_by("-finished_at", "-pk")
        .first()
    )


def derive_pii_facts(version: DatasetVersion) -> tuple[str, list[str]]:
    """The PII status and PII types that the version's scans and reviews imply.

    The types are what the latest completed scan found and no steward
    dismissed, plus any a steward confirmed: a finding counts as a fact
    without waiting for a human, and only a dismissal (with its reason)
    removes one. The status says whether the scan is complete: a version with
    no completed scan, a scan queued or running, or whose latest scan failed
    is ``unscanned``, ``scanning`` or ``scan_failed`` (fail closed: see
    ``PII_SCAN_INCOMPLETE``); a failed scan never hides the types an earlier
    completed one found.
    """
    reviews = dict(PiiEntityReview.objects.filter(version=version).values_list("entity_type", "decision"))
    confirmed = {entity for entity, decision in reviews.items() if decision == PiiReviewDecision.CONFIRMED}
    dismissed = {entity for entity, decision in reviews.items() if decision == PiiReviewDecision.DISMISSED}
    latest = latest_completed_scan(version)
    found = set(latest.found_entity_types) if latest is not None else set()
    types = sorted((found - dismissed) | confirmed)
    if PiiScan.objects.filter(version=version).filter(status__in=ACTIVE_SCAN_STATUSES).exists():
        return PiiStatus.SCANNING, types
    finished = latest_finished_scan(version)
    if finished is not None and finished.status == PiiScanStatus.FAILED:
        return PiiStatus.SCAN_FAILED, types
    if latest is None:
        return PiiStatus.UNSCANNED, types
    if found - set(reviews):
        return PiiStatus.PII_FOUND, types
    if types or (reviews and found):
        return PiiStatus.REVIEWED, types
    return PiiStatus.CLEAN, types


def refresh_version_pii(version: DatasetVersion, *, actor: Actor | None = None, reason: str = "") -> DatasetVersion:
    """Store the derived PII facts on the version; bump ``facts_version`` and
    refresh lineage when they changed. Runs in the caller's transaction."""
    with transaction.atomic():
        lock_for_governed_write()  # before the version row: see governance.models.audit
        locked = DatasetVersion.objects.select_for_update().get(pk=version.pk)
        status, types = derive_pii_facts(locked)
        if locked.pii_status == status and list(locked.pii_types) == types:
            return locked
        locked.pii_status = status
        locked.pii_types = types
        locked.facts_version = F("facts_version") + 1  # type: ignore[assignment]
        locked.save(update_fields=["pii_status", "pii_types", "facts_version"])
        lineage.on_dataset_version_changed(locked, actor=actor, reason=reason or "PII facts changed")
    locked.refresh_from_db()
    return locked



def narrow_redaction_edges(version: DatasetVersion, found: list[str]) -> None:
    """After a scan of a redacted copy: the types its redaction removed but the
    scan still finds keep propagating from the source (the edge stops only the rest)."""
    redactions = PiiRedaction.objects.filter(result=version, status=PiiJobStatus.COMPLETED).select_related("source")
    for redaction in redactions:
        lineage.do_narrow_redaction(actor=None, source=redaction.source, redacted=version, still_found=found)
