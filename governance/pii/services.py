"""PII workflows: request, run, cancel and recover scans; review findings; redact.

Like the catalog services, each ``do_<verb>`` checks who may act, validates
before it writes, writes in one durable transaction and records an audit
event. The Celery tasks, the API, the admin console and the ``scan`` command
all call these functions.

The version's PII facts (``pii_status``, ``pii_types``) are derived in one
place, ``refresh_version_pii``, from the version's scans and reviews: the
entity types found and not dismissed by a steward are its PII fact, a status
of unscanned, scanning or scan_failed is the "PII scan incomplete" fact, and
``facts_version`` is bumped and lineage refreshed whenever either changes.
"""

from __future__ import annotations

import datetime as dt
import logging
import socket
import time
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.db.models.functions import Coalesce
from django.utils import timezone

from governance.choices import PiiStatus
from governance.lineage import services as lineage
from governance.models import DatasetVersion
from governance.models.audit import lock_for_governed_write, record_audit_event
from governance.models.pii import (
    ACTIVE_SCAN_STATUSES,
    PiiEntityReview,
    PiiFinding,
    PiiJobStatus,
    PiiRedaction,
    PiiReviewDecision,
    PiiScan,
    PiiScanStatus,
    PiiScanTrigger,
)
from governance.pii.config import ENTITY_TYPE, ScanConfig, load_config
from governance.pii.engine import get_analyzer
from governance.pii.records import iter_records
from governance.pii.scanner import (
    POOL_MIN_RECORDS,
    ScanStopped,
    new_report_state,
    scan_records,
    summarize,
)
from pedigree.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from pedigree.storage import BlobNotFound, get_store
from pedigree.types import Actor

logger = logging.getLogger(__name__)

ACTION_SCAN_REQUESTED = "pii_scan.requested"
ACTION_SCAN_COMPLETED = "pii_scan.completed"
ACTION_SCAN_FAILED = "pii_scan.failed"
ACTION_SCAN_CANCELLED = "pii_scan.cancelled"
ACTION_SCAN_CANCEL_REQUESTED = "pii_scan.cancel_requested"
ACTION_ENTITY_CONFIRMED = "pii_entity.confirmed"
ACTION_ENTITY_DISMISSED = "pii_entity.dismissed"

CHECKPOINT_SECONDS = 2.0
MAX_ATTEMPTS = 3


def stale_after() -> dt.timedelta:
    """How long a running scan may go without a heartbeat before it counts as dead."""
    return dt.timedelta(seconds=float(getattr(settings, "PEDIGREE_PII_SCAN_STALE_SECONDS", 120)))


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


# --- Scans -----------------------------------------------------------------------------------


def scan_config(*, score_threshold: float | None = None, entities: list[str] | None = None) -> ScanConfig:
    """The configured scanner settings, with a threshold or entity list overridden."""
    config = load_config()
    changes: dict[str, Any] = {}
    if score_threshold is not None:
        changes["score_threshold"] = score_threshold
    if entities is not None:
        changes["entities"] = entities or "all"
    return config.with_overrides(**changes) if changes else config


def _enqueue(scan_id: int) -> None:
    from governance.tasks import scan_dataset_version

    transaction.on_commit(lambda: scan_dataset_version.delay(scan_id))


def do_request_pii_scan(
    *,
    actor: Actor | None,
    version: DatasetVersion,
    trigger: str = PiiScanTrigger.ON_DEMAND,
    config: ScanConfig | None = None,
    enqueue: bool = True,
) -> PiiScan:
    """Queue a scan of ``version`` (run by a Celery worker on the ``scans`` queue).

    A scan with the same configuration already queued or running is returned
    for an automatic request and refused (Conflict) for one on demand.
    """
    ensure_may_change(actor, version, "scan the versions")
    config = config or load_config()
    with transaction.atomic(durable=True):
        lock_for_governed_write()  # the global locks first: see governance.models.audit
        DatasetVersion.objects.select_for_update().filter(pk=version.pk).first()
        active = PiiScan.objects.filter(version=version).filter(status__in=ACTIVE_SCAN_STATUSES, config_digest=config.digest).first()
        if active is not None:
            if trigger != PiiScanTrigger.ON_DEMAND:
                return active
            raise Conflict(
                f"PII scan #{active.pk} of {version} with this configuration is already {active.status}; "
                "wait for it or cancel it",
                scan=active.pk,
            )
        scan = PiiScan.objects.create(
            version=version,
            trigger=trigger,
            requested_by=actor if actor is not None and actor.is_authenticated else None,
            records_total=version.record_count,
            config=config.as_dict(),
            config_digest=config.digest,
        )
        record_audit_event(
            actor=actor,
            action=ACTION_SCAN_REQUESTED,
            target=version,
            changes={"scan": scan.pk, "trigger": trigger, "config_digest": config.digest},
        )
        refresh_version_pii(version, actor=actor, reason=f"PII scan #{scan.pk} requested")
        if enqueue:
            _enqueue(scan.pk)
    return scan


def on_version_created(version_id: int) -> None:
    """After a new version commits: scan it automatically (unless turned off)."""
    if not getattr(settings, "PEDIGREE_PII_AUTO_SCAN", True):
        return
    version = DatasetVersion.objects.select_related("dataset").filter(pk=version_id).first()
    if version is None:
        return
    try:
        do_request_pii_scan(actor=None, version=version, trigger=PiiScanTrigger.AUTOMATIC)
    except Exception:  # a scan that cannot be queued must not fail the upload
        logger.exception("could not queue the automatic PII scan of %s", version)


def claim_pii_scan(scan_id: int, *, worker: str = "") -> PiiScan | None:
    """Claim a queued scan (or a running one whose worker died) for this worker.

    A conditional UPDATE: only the caller that changed exactly one row runs it.
    """
    now = timezone.now()
    claimable = Q(status=PiiScanStatus.QUEUED) | Q(status=PiiScanStatus.RUNNING, heartbeat_at__lt=now - stale_after())
    claimed = (
        PiiScan.objects.filter(claimable, pk=scan_id, cancel_requested=False)
        .update(
            status=PiiScanStatus.RUNNING,
            attempts=F("attempts") + 1,
            heartbeat_at=now,
            started_at=Coalesce("started_at", now),
            worker=(worker or socket.gethostname())[:200],
        )
    )
    if claimed != 1:
        scan = PiiScan.objects.filter(pk=scan_id, status=PiiScanStatus.QUEUED, cancel_requested=True).first()
        if scan is not None:
            _finish_cancelled(scan)
        return None
    return PiiScan.objects.select_related("version__dataset").get(pk=scan_id)


def run_pii_scan(scan: PiiScan, *, on_progress: Callable[[PiiScan], None] | None = None, workers: int | None = None) -> PiiScan:
    """Run a claimed scan to its end: stream the version's text fields, scan
    them, checkpoint every few seconds, and write the report.

    Resumes from the scan's checkpoint. A cancel request stops it at the next
    checkpoint. Any error fails it cleanly with the reason (the version is
    never reported clean by a scan that did not finish).
    """
    version = scan.version
    config = ScanConfig.from_dict(scan.config)
    try:
        analyzer = get_analyzer(config)
        PiiScan.objects.filter(pk=scan.pk).update(
            presidio_version=analyzer.versions["presidio_analyzer"],
            spacy_version=analyzer.versions["spacy"] if analyzer.ner_available else "",
            model_name=analyzer.versions["model"],
            model_version=analyzer.versions["model_version"],
            ner_available=analyzer.ner_available,
            entities_scanned=list(analyzer.entities),
            not_scanned_entities=list(analyzer.not_scanned),
        )
        start = scan.records_done if scan.checkpoint else 0
        state = scan.checkpoint if scan.checkpoint else new_report_state()
        try:
            chunks = get_store().iter_chunks(version.storage_key)
            records = iter_records(chunks, data_format=version.format, start=start)
            last_save = time.monotonic()

            def progress(records_done: int, current: dict[str, Any]) -> bool:
                nonlocal last_save
                if time.monotonic() - last_save < CHECKPOINT_SECONDS:
                    return True
                last_save = time.monotonic()
                return _checkpoint(scan, records_done, current, on_progress)

            if workers is None and version.record_count < POOL_MIN_RECORDS:
                workers = 1  # a pool costs more than it saves on a small version
            state = scan_records(records, config, state=state, workers=workers, on_progress=progress)
        except BlobNotFound:
            raise NotFound(f"the bytes of {version} are missing from storage") from None
    except ScanStopped:
        scan.refresh_from_db()
        if scan.cancel_requested:
            return _finish_cancelled(scan)
        return scan  # another worker took the scan over
    except Exception as error:
        logger.exception("PII scan #%s of %s failed", scan.pk, version)
        return _finish_failed(scan, f"{type(error).__name__}: {error}")
    return _finish_completed(scan, state)


def _checkpoint(scan: PiiScan, records_done: int, state: dict[str, Any], on_progress: Callable[[PiiScan], None] | None) -> bool:
    """Save progress and aggregates; False when the scan should stop."""
    # attempts identifies this run: if the scan was taken over (this worker
    # looked dead), the update matches nothing and this run stops.
    updated = PiiScan.objects.filter(
        pk=scan.pk, status=PiiScanStatus.RUNNING, cancel_requested=False, attempts=scan.attempts
    ).update(records_done=records_done, checkpoint=state, heartbeat_at=timezone.now())
    scan.records_done = records_done
    if on_progress is not None:
        on_progress(scan)
    return updated == 1


def _finish_completed(scan: PiiScan, state: dict[str, Any]) -> PiiScan:
    summary = summarize(state)
    found = sorted(summary["entities"])
    with transaction.atomic(durable=True):
        lock_for_governed_write()  # the global locks first: see governance.models.audit
        locked = PiiScan.objects.select_for_update().get(pk=scan.pk)
        if locked.status != PiiScanStatus.RUNNING or locked.attempts != scan.attempts:
            return locked  # cancelled meanwhile, or taken over by another worker
        PiiFinding.objects.bulk_create(
            PiiFinding(
                scan=locked,
                field=row["field"][:200],
                entity_type=row["entity_type"],
                count=row["count"],
                records=row["records"],
                score_min=row["score_min"],
                score_max=row["score_max"],
                score_mean=row["score_mean"],
                histogram=row["histogram"],
                samples=row["samples"],
            )
            for row in summary["rows"]
        )
        locked.status = PiiScanStatus.COMPLETED
        locked.finished_at = timezone.now()
        locked.records_done = state["records_scanned"]
        locked.found_entity_types = found
        locked.totals = {
            "records_scanned": state["records_scanned"],
            "texts_scanned": state["texts_scanned"],
            "characters_scanned": state["characters_scanned"],
            "empty_fields": state["empty_fields"],
            "chunked_texts": state.get("chunked_texts", 0),
            "non_latin_records": state["non_latin_records"],
            "problem_count": state["problem_count"],
            "entities": summary["entities"],
        }
        locked.problems = state["problems"]
        locked.checkpoint = None
        locked.save()
        record_audit_event(
            actor=None,
            action=ACTION_SCAN_COMPLETED,
            target=locked.version,
            changes={
                "scan": locked.pk,
                "outcome": locked.outcome,
                "found": {entity: figures["count"] for entity, figures in summary["entities"].items()},
                "records_scanned": state["records_scanned"],
                "config_digest": locked.config_digest,
            },
        )
        refresh_version_pii(locked.version, reason=f"PII scan #{locked.pk} completed")
        _narrow_redaction_edges(locked.version, found)
    return locked


def _narrow_redaction_edges(version: DatasetVersion, found: list[str]) -> None:
    """After a scan of a redacted copy: the types its redaction removed but the
    scan still finds keep propagating from the source (the edge stops only the rest)."""
    redactions = PiiRedaction.objects.filter(result=version, status=PiiJobStatus.COMPLETED).select_related("source")
    for redaction in redactions:
        lineage.do_narrow_redaction(actor=None, source=redaction.source, redacted=version, still_found=found)


def _finish_failed(scan: PiiScan, message: str) -> PiiScan:
    with transaction.atomic(durable=True):
        lock_for_governed_write()  # the global locks first: see governance.models.audit
        locked = PiiScan.objects.select_for_update().get(pk=scan.pk)
        if locked.status not in ACTIVE_SCAN_STATUSES:
            return locked
        locked.status = PiiScanStatus.FAILED
        locked.error = message[:4000]
        locked.finished_at = timezone.now()
        locked.save(update_fields=["status", "error", "finished_at"])
        record_audit_event(
            actor=None, action=ACTION_SCAN_FAILED, target=locked.version, reason=message[:1000], changes={"scan": locked.pk}
        )
        refresh_version_pii(locked.version, reason=f"PII scan #{locked.pk} failed")
    return locked


def _finish_cancelled(scan: PiiScan, actor: Actor | None = None) -> PiiScan:
    with transaction.atomic(durable=not transaction.get_connection().in_atomic_block):
        lock_for_governed_write()  # the global locks first: see governance.models.audit
        locked = PiiScan.objects.select_for_update().get(pk=scan.pk)
        if locked.status not in ACTIVE_SCAN_STATUSES:
            return locked
        locked.status = PiiScanStatus.CANCELLED
        locked.cancel_requested = True
        locked.finished_at = timezone.now()
        locked.checkpoint = None
        locked.save(update_fields=["status", "cancel_requested", "finished_at", "checkpoint"])
        record_audit_event(
            actor=actor,
            action=ACTION_SCAN_CANCELLED,
            target=locked.version,
            changes={"scan": locked.pk, "records_done": locked.records_done},
        )
        refresh_version_pii(locked.version, actor=actor, reason=f"PII scan #{locked.pk} cancelled")
    return locked


def do_cancel_pii_scan(*, actor: Actor, scan: PiiScan) -> PiiScan:
    """Cancel a scan: a queued one at once, a running one at its next checkpoint."""
    ensure_may_change(actor, scan.version, "cancel scans")
    if scan.status not in ACTIVE_SCAN_STATUSES:
        raise Conflict(f"PII scan #{scan.pk} of {scan.version} is {scan.status} and cannot be cancelled")
    if scan.status == PiiScanStatus.QUEUED:
        return _finish_cancelled(scan, actor)
    with transaction.atomic(durable=True):
        lock_for_governed_write()  # the global locks first: see governance.models.audit
        PiiScan.objects.filter(pk=scan.pk).update(cancel_requested=True)
        record_audit_event(actor=actor, action=ACTION_SCAN_CANCEL_REQUESTED, target=scan.version, changes={"scan": scan.pk})
    scan.refresh_from_db()
    return scan


def do_recover_stale_pii_scans(*, now: dt.datetime | None = None) -> list[PiiScan]:
    """Find scans whose worker died (no heartbeat): queue them again to resume
    from their checkpoint, or fail them after ``MAX_ATTEMPTS`` tries."""
    now = now or timezone.now()
    stale = PiiScan.objects.filter(status=PiiScanStatus.RUNNING, heartbeat_at__lt=now - stale_after())
    recovered = []
    for scan in stale.select_related("version__dataset"):
        if scan.attempts >= MAX_ATTEMPTS:
            recovered.append(
                _finish_failed(scan, f"the worker stopped responding {scan.attempts} times; scan abandoned at record {scan.records_done}")
            )
        else:
            with transaction.atomic(durable=True):
                _enqueue(scan.pk)
            recovered.append(scan)
    return recovered


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


def get_scan(*, version: DatasetVersion, scan_id: int | None = None) -> PiiScan:
    """A scan of ``version`` by id, or its latest one."""
    scans = PiiScan.objects.filter(version=version)
    scan = scans.filter(pk=scan_id).first() if scan_id is not None else scans.order_by("-requested_at", "-pk").first()
    if scan is None:
        raise NotFound(f"{version} has no PII scan" + (f" #{scan_id}" if scan_id is not None else "") + "; start one")
    return scan


# --- Redaction -------------------------------------------------------------------------------

ACTION_REDACTION_REQUESTED = "dataset_version.redaction_requested"
ACTION_VERSION_REDACTED = "dataset_version.redacted"
ACTION_REDACTION_FAILED = "dataset_version.redaction_failed"


def _dataset_salt(version: DatasetVersion) -> str:
    import secrets

    from governance.models.pii import PiiDatasetSalt

    salt, _ = PiiDatasetSalt.objects.get_or_create(dataset=version.dataset, defaults={"salt": secrets.token_hex(32)})
    return salt.salt


def do_request_redaction(
    *, actor: Actor, version: DatasetVersion, operators: dict[str, Any], reason: str = "", enqueue: bool = True
) -> PiiRedaction:
    """Queue a redacted copy of a version with PII (made by a Celery worker on
    the ``scans`` queue: it reads and rewrites the whole version).

    ``operators`` maps entity types (or ``DEFAULT``) to ``replace`` (with
    ``<TYPE>``), ``mask``, ``hash`` (with the dataset's salt), ``drop`` (the
    whole record) or ``keep``. Types the steward dismissed are left alone.
    """
    from governance.pii.redaction import validate_operators

    ensure_may_change(actor, version, "redact the versions")
    clean_operators = validate_operators(operators)
    latest = latest_completed_scan(version)
    if latest is None or version.pii_status not in (PiiStatus.PII_FOUND, PiiStatus.REVIEWED) or not latest.found_entity_types:
        raise Conflict(
            f"{version} has no PII to redact (PII status {version.pii_status}); scan it first",
            pii_status=version.pii_status,
        )
    with transaction.atomic(durable=True):
        lock_for_governed_write()  # the global locks first: see governance.models.audit
        redaction = PiiRedaction.objects.create(
            source=version,
            operators=clean_operators,
            config_digest=latest.config_digest,
            scan=latest,
            reason=reason.strip(),
            requested_by=actor if actor.is_authenticated else None,
        )
        record_audit_event(
            actor=actor,
            action=ACTION_REDACTION_REQUESTED,
            target=version,
            reason=reason,
            changes={"redaction": redaction.pk, "operators": clean_operators},
        )
        if enqueue:
            from governance.tasks import redact_dataset_version

            transaction.on_commit(lambda: redact_dataset_version.delay(redaction.pk))
    return redaction


def _enqueue_redaction(redaction_id: int) -> None:
    from governance.tasks import redact_dataset_version

    transaction.on_commit(lambda: redact_dataset_version.delay(redaction_id))


def claim_redaction(redaction_id: int, *, worker: str = "") -> PiiRedaction | None:
    """Claim a queued redaction (or a running one whose worker died) for this worker.

    A conditional UPDATE: only the caller that changed exactly one row runs it;
    ``attempts`` identifies the run, so a worker that was taken over cannot
    complete it.
    """
    now = timezone.now()
    claimable = Q(status=PiiJobStatus.QUEUED) | Q(status=PiiJobStatus.RUNNING, heartbeat_at__lt=now - stale_after())
    claimed = PiiRedaction.objects.filter(claimable, pk=redaction_id, attempts__lt=MAX_ATTEMPTS).update(
        status=PiiJobStatus.RUNNING,
        attempts=F("attempts") + 1,
        heartbeat_at=now,
        started_at=Coalesce("started_at", now),
        worker=(worker or socket.gethostname())[:200],
    )
    if claimed != 1:
        return None
    return PiiRedaction.objects.select_related("source__dataset", "scan", "requested_by").get(pk=redaction_id)


class RedactionTakenOver(Exception):
    """Another worker claimed this redaction (this one looked dead): stop quietly."""


def _redaction_heartbeat(redaction: PiiRedaction) -> Callable[[], None]:
    last = time.monotonic()

    def beat() -> None:
        nonlocal last
        if time.monotonic() - last < CHECKPOINT_SECONDS:
            return
        last = time.monotonic()
        alive = PiiRedaction.objects.filter(
            pk=redaction.pk, status=PiiJobStatus.RUNNING, attempts=redaction.attempts
        ).update(heartbeat_at=timezone.now())
        if alive != 1:
            raise RedactionTakenOver()

    return beat


def _fail_redaction(redaction: PiiRedaction, message: str, *, attempts: int | None = None) -> bool:
    """Mark a redaction failed (if it is still this run's); True when it was."""
    actor = redaction.requested_by
    with transaction.atomic(durable=True):
        lock_for_governed_write()  # the global locks first: see governance.models.audit
        row = PiiRedaction.objects.filter(pk=redaction.pk, status__in=(PiiJobStatus.QUEUED, PiiJobStatus.RUNNING))
        if attempts is not None:
            row = row.filter(attempts=attempts)
        if row.update(status=PiiJobStatus.FAILED, error=message[:4000], finished_at=timezone.now()) != 1:
            return False
        record_audit_event(
            actor=actor,
            action=ACTION_REDACTION_FAILED,
            target=redaction.source,
            reason=message[:1000],
            changes={"redaction": redaction.pk},
        )
    return True


def do_recover_stale_redactions(*, now: dt.datetime | None = None) -> list[PiiRedaction]:
    """Find redactions whose worker died (no heartbeat): queue them again (a
    redaction restarts from the beginning; its result is content-addressed, so
    a second run makes the same version), or fail them after ``MAX_ATTEMPTS``."""
    now = now or timezone.now()
    stale = PiiRedaction.objects.filter(status=PiiJobStatus.RUNNING, heartbeat_at__lt=now - stale_after())
    recovered = []
    for redaction in stale.select_related("source__dataset", "requested_by"):
        if redaction.attempts >= MAX_ATTEMPTS:
            _fail_redaction(
                redaction,
                f"the worker stopped responding {redaction.attempts} times; redaction abandoned",
                attempts=redaction.attempts,
            )
        else:
            with transaction.atomic(durable=True):
                _enqueue_redaction(redaction.pk)
        redaction.refresh_from_db()
        recovered.append(redaction)
    return recovered


def run_redaction(redaction: PiiRedaction, *, raise_errors: bool = False) -> PiiRedaction:
    """Make the redacted version: rewrite the bytes, ingest them (hashed,
    content-addressed), record the version ``derived_from`` the original with
    a lineage redaction edge and audit events, then queue its rescan.

    A failure marks the redaction failed with the reason (re-raised with
    ``raise_errors``); no version is created.
    """
    import tempfile

    from governance.choices import AuditAction
    from governance.ingest.pipeline import ingest_stream
    from governance.lineage import openlineage as lineage_events
    from governance.models import Dataset
    from governance.pii.redaction import Redactor, redact_stream
    from governance.services import next_version  # governance.services imports this module

    version = redaction.source
    actor = redaction.requested_by
    clean_operators = redaction.operators
    assert redaction.scan is not None
    latest = redaction.scan
    dismissed = list(
        PiiEntityReview.objects.filter(version=version, decision=PiiReviewDecision.DISMISSED).values_list("entity_type", flat=True)
    )
    config = ScanConfig.from_dict(latest.config)
    store = get_store()
    run = lineage_events.start_redaction_run(source=version)
    try:
        redactor = Redactor(config, clean_operators, salt=_dataset_salt(version), skip_types=dismissed)
        redactor.heartbeat = _redaction_heartbeat(redaction)
        with tempfile.TemporaryFile(prefix="pedigree-redacted-") as spool:
            try:
                stats = redact_stream(
                    store.iter_chunks(version.storage_key),
                    data_format=version.format,
                    redactor=redactor,
                    out=spool,
                )
            except BlobNotFound:
                raise NotFound(f"the bytes of {version} are missing from storage") from None
            if not stats.changed_anything:
                kept = f" (kept: {', '.join(sorted(stats.kept_entities))})" if stats.kept_entities else ""
                raise InvalidInput(
                    f"nothing to redact: these operators change nothing in {version}{kept}; no version was made",
                    field="operators",
                )
            if stats.records_out == 0:
                raise InvalidInput(
                    f"redacting {version} with these operators drops all {stats.records_in} records", field="operators"
                )
            spool.seek(0)
            extension = {"jsonl": "jsonl", "csv": "csv", "text": "txt", "parquet": "parquet"}[version.format]
            filename = f"{version.dataset.name}-v{version.number}-redacted.{extension}"
            result = ingest_stream(
                spool,
                filename=filename,
                store=store,
                max_bytes=settings.PEDIGREE_MAX_UPLOAD_BYTES,
                max_record_bytes=settings.PEDIGREE_MAX_RECORD_BYTES,
                declared_format=version.format,
            )
        if result.sha256 == version.sha256:
            raise InvalidInput(f"nothing to redact: the output is identical to {version}; no version was made", field="operators")
        # What the edge stops: the types actually redacted, never more; the
        # rescan of the copy narrows it further (``_narrow_redaction_edges``).
        removed = stats.removed_types
        with transaction.atomic(durable=True):
            lock_for_governed_write()  # the global locks first: see governance.models.audit
            mine = PiiRedaction.objects.select_for_update().filter(
                pk=redaction.pk, status=PiiJobStatus.RUNNING, attempts=redaction.attempts
            )
            if mine.first() is None:
                raise RedactionTakenOver()
            Dataset.objects.select_for_update().filter(pk=version.dataset_id).first()
            redacted = DatasetVersion.objects.filter(dataset=version.dataset, sha256=result.sha256).first()
            created = redacted is None
            if redacted is None:
                redacted = next_version(
                    dataset=version.dataset,
                    result=result,
                    filename=filename,
                    actor=actor,
                    derived_from=version,
                    **{name: getattr(version, name) for name in DatasetVersion.GOVERNANCE_FIELDS},
                )
                redacted.save()
                lineage.on_dataset_version_changed(redacted, actor=actor)
                lineage.do_record_redaction(
                    actor=actor, source=version, redacted=redacted, removed_pii_types=removed, run_id=run.run_id
                )
                record_audit_event(
                    actor=actor,
                    action=AuditAction.VERSION_CREATED,
                    target=redacted,
                    reason=redaction.reason,
                    changes={
                        "sha256": result.sha256,
                        "size_bytes": result.size_bytes,
                        "record_count": result.layout.record_count,
                        "format": result.layout.format,
                        "derived_from": version.label,
                        "redaction_operators": clean_operators,
                        **redacted.governance_snapshot(),
                    },
                )
            PiiRedaction.objects.filter(pk=redaction.pk).update(
                status=PiiJobStatus.COMPLETED,
                result=redacted,
                records_in=stats.records_in,
                records_out=stats.records_out,
                records_dropped=stats.records_dropped,
                entities_redacted=dict(stats.entities),
                removed_types=removed,
                finished_at=timezone.now(),
            )
            record_audit_event(
                actor=actor,
                action=ACTION_VERSION_REDACTED,
                target=version,
                reason=redaction.reason,
                changes={
                    "redaction": redaction.pk,
                    "redacted_version": redacted.label,
                    "operators": clean_operators,
                    "records_dropped": stats.records_dropped,
                    "entities_redacted": dict(stats.entities),
                    "entities_dropped": dict(stats.dropped_entities),
                    "entities_kept": dict(stats.kept_entities),
                    "removed_types": removed,
                },
            )
        run.complete(outputs=[lineage_events.output_version(redacted)])
    except RedactionTakenOver:
        run.fail(RuntimeError("taken over by another worker"))
        redaction.refresh_from_db()
        return redaction
    except Exception as error:
        run.fail(error)
        message = error.message if isinstance(error, InvalidInput | NotFound) else f"{type(error).__name__}: {error}"
        _fail_redaction(redaction, message, attempts=redaction.attempts)
        if raise_errors:
            raise
        logger.warning("redaction #%s of %s failed: %s", redaction.pk, version, message)
        redaction.refresh_from_db()
        return redaction
    if created or not PiiScan.objects.filter(version=redacted).exists():
        do_request_pii_scan(actor=None, version=redacted, trigger=PiiScanTrigger.REDACTION, config=config)
    redaction.refresh_from_db()
    return redaction


def do_redact_dataset_version(
    *, actor: Actor, version: DatasetVersion, operators: dict[str, Any], reason: str = ""
) -> PiiRedaction:
    """Make a redacted copy here and now (the command line and tests); the API
    queues it for a worker with ``do_request_redaction``."""
    redaction = do_request_redaction(actor=actor, version=version, operators=operators, reason=reason, enqueue=False)
    claimed = claim_redaction(redaction.pk)
    assert claimed is not None
    return run_redaction(claimed, raise_errors=True)
