"""Redaction: a redacted copy of a version with PII, made by a worker and rescanned.

Requested by a steward (``do_request_redaction``), run on the ``scans`` queue
(``run_redaction``), recovered when its worker dies.
"""

from __future__ import annotations

import datetime as dt
import logging
import secrets
import socket
import tempfile
import time
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.db.models.functions import Coalesce
from django.utils import timezone

from governance.choices import AuditAction, PiiStatus
from governance.ingest.pipeline import ingest_stream
from governance.lineage import openlineage as lineage_events
from governance.lineage import services as lineage
from governance.models import Dataset, DatasetVersion
from governance.models.audit import lock_for_governed_write, record_audit_event
from governance.models.pii import (
    PiiDatasetSalt,
    PiiEntityReview,
    PiiJobStatus,
    PiiRedaction,
    PiiReviewDecision,
    PiiScan,
    PiiScanTrigger,
)
from governance.pii.config import ScanConfig
from governance.pii.redaction import Redactor, redact_stream, validate_operators
from governance.pii.scans import CHECKPOINT_SECONDS, MAX_ATTEMPTS, do_request_pii_scan, stale_after
from governance.pii.versions import (
    ensure_may_change,
    latest_completed_scan,
)
from pedigree.errors import Conflict, InvalidInput, NotFound
from pedigree.storage import BlobNotFound, get_store
from pedigree.types import Actor

logger = logging.getLogger(__name__)

# --- Redaction -------------------------------------------------------------------------------

ACTION_REDACTION_REQUESTED = "dataset_version.redaction_requested"
ACTION_VERSION_REDACTED = "dataset_version.redacted"
ACTION_REDACTION_FAILED = "dataset_version.redaction_failed"


def _dataset_salt(version: DatasetVersion) -> str:
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
            _enqueue_redaction(redaction.pk)
    return redaction


def _enqueue_redaction(redaction_id: int) -> None:
    # governance.tasks imports governance.services, which imports governance.pii.scans:
    # the task is looked up when enqueuing, not at import.
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
    # governance.services is above governance.pii (it imports pii.scans): this call back up stays
    # local until ingest and redaction share one record_dataset_version below both.
    from governance.services import next_version

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
        # rescan of the copy narrows it further (``narrow_redaction_edges``).
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
