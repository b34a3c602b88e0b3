"""PII scans: request, claim, run, cancel and recover them.

Like the catalog services, each ``do_<verb>`` checks who may act, validates
before it writes, writes in one durable transaction and records an audit
event. The Celery tasks, the API, the admin console and the ``scan`` command
all call these functions.
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

from governance.models import DatasetVersion
from governance.models.audit import lock_for_governed_write, record_audit_event
from governance.models.pii import (
    ACTIVE_SCAN_STATUSES,
    PiiFinding,
    PiiScan,
    PiiScanStatus,
    PiiScanTrigger,
)
from governance.pii.config import ScanConfig, load_config
from governance.pii.engine import get_analyzer
from governance.pii.records import iter_records
from governance.pii.scanner import (
    POOL_MIN_RECORDS,
    ScanStopped,
    new_report_state,
    scan_records,
    summarize,
)
from governance.pii.versions import (
    ensure_may_change,
    narrow_redaction_edges,
    refresh_version_pii,
)
from pedigree.errors import Conflict, NotFound
from pedigree.storage import BlobNotFound, get_store
from pedigree.types import Actor

logger = logging.getLogger(__name__)

ACTION_SCAN_REQUESTED = "pii_scan.requested"
ACTION_SCAN_COMPLETED = "pii_scan.completed"
ACTION_SCAN_FAILED = "pii_scan.failed"
ACTION_SCAN_CANCELLED = "pii_scan.cancelled"
ACTION_SCAN_CANCEL_REQUESTED = "pii_scan.cancel_requested"

CHECKPOINT_SECONDS = 2.0
MAX_ATTEMPTS = 3


def stale_after() -> dt.timedelta:
    """How long a running scan may go without a heartbeat before it counts as dead."""
    return dt.timedelta(seconds=float(getattr(settings, "PEDIGREE_PII_SCAN_STALE_SECONDS", 120)))


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
    # governance.tasks imports governance.services, which imports this module:
    # the task is looked up when enqueuing, not at import.
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
        narrow_redaction_edges(locked.version, found)
    return locked



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



def get_scan(*, version: DatasetVersion, scan_id: int | None = None) -> PiiScan:
    """A scan of ``version`` by id, or its latest one."""
    scans = PiiScan.objects.filter(version=version)
    scan = scans.filter(pk=scan_id).first() if scan_id is not None else scans.order_by("-requested_at", "-pk").first()
    if scan is None:
        raise NotFound(f"{version} has no PII scan" + (f" #{scan_id}" if scan_id is not None else "") + "; start one")
    return scan
