"""Steward review of PII findings: confirm or dismiss an entity type of a version."""

from __future__ import annotations

from django.db import transaction

from governance.models import DatasetVersion
from governance.models.audit import lock_for_governed_write, record_audit_event
from governance.models.pii import (
    PiiEntityReview,
    PiiFinding,
    PiiReviewDecision,
    PiiScanStatus,
)
from governance.pii.config import ENTITY_TYPE
from governance.pii.versions import (
    ensure_may_change,
    latest_completed_scan,
    refresh_version_pii,
)
from pedigree.errors import InvalidInput
from pedigree.types import Actor

ACTION_ENTITY_CONFIRMED = "pii_entity.confirmed"
ACTION_ENTITY_DISMISSED = "pii_entity.dismissed"


# --- Review ----------------------------------------------------------------------------------


def do_review_pii_entity(
    *, actor: Actor, version: DatasetVersion, entity_type: str, decision: str, reason: str
) -> PiiEntityReview:
    """A steward confirms or dismisses one entity type found in ``version``.

    Types a scan found are the version's PII fact already; dismissing one (a
    false positive) removes it, confirming one keeps it whatever later scans
    find. Needs a reason; recorded in the audit log.
    """
    ensure_may_change(actor, version, "review PII findings")
    entity_type = (entity_type or "").strip().upper()
    if not ENTITY_TYPE.match(entity_type):
        raise InvalidInput(f"{entity_type!r} is not an entity type (e.g. EMAIL_ADDRESS)", field="entity_type")
    if decision not in PiiReviewDecision.values:
        raise InvalidInput(f"decision must be confirmed or dismissed, not {decision!r}", field="decision")
    if not (reason or "").strip():
        raise InvalidInput(f"a reason is required to {decision[:-1]} {entity_type} on {version}", field="reason")
    found = PiiFinding.objects.filter(
        scan__version=version, scan__status=PiiScanStatus.COMPLETED, entity_type=entity_type
    ).exists()
    if decision == PiiReviewDecision.DISMISSED and not found:
        raise InvalidInput(f"no completed scan of {version} found {entity_type}: nothing to dismiss", field="entity_type")
    latest = latest_completed_scan(version)
    with transaction.atomic(durable=True):
        lock_for_governed_write()  # the global locks first: see governance.models.audit
        previous = PiiEntityReview.objects.select_for_update().filter(version=version, entity_type=entity_type).first()
        before = list(DatasetVersion.objects.get(pk=version.pk).pii_types)
        review, _ = PiiEntityReview.objects.update_or_create(
            version=version,
            entity_type=entity_type,
            defaults={
                "decision": decision,
                "reason": reason.strip(),
                "scan": latest,
                "decided_by": actor if actor.is_authenticated else None,
            },
        )
        refreshed = refresh_version_pii(version, actor=actor, reason=reason)
        record_audit_event(
            actor=actor,
            action=ACTION_ENTITY_CONFIRMED if decision == PiiReviewDecision.CONFIRMED else ACTION_ENTITY_DISMISSED,
            target=version,
            reason=reason.strip(),
            changes={
                "entity_type": entity_type,
                "decision": [previous.decision if previous else None, decision],
                "pii_types": [before, list(refreshed.pii_types)],
                "pii_status": refreshed.pii_status,
            },
        )
    return review
