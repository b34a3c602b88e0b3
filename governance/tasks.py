"""Celery tasks of the governance app: thin wrappers around services."""

from __future__ import annotations

from typing import Any

from celery import shared_task

from governance.services import do_expire_dataset_versions


@shared_task(name="governance.expire_dataset_versions", queue="default", acks_late=True)
def expire_dataset_versions() -> list[int]:
    """Mark versions whose expiry date has passed as expired (runs hourly from beat)."""
    return [version.pk for version in do_expire_dataset_versions()]


# --- PII scans (queue "scans": CPU-heavy, a worker process pool per scan) -----------------


@shared_task(
    bind=True,
    name="governance.scan_dataset_version",
    queue="scans",
    acks_late=True,
    reject_on_worker_lost=True,
    ignore_result=True,
)
def scan_dataset_version(self: Any, scan_id: int) -> str:
    """Run PII scan ``scan_id``: claim it (a queued scan, or a running one whose
    worker died, resumed from its checkpoint), then let the service scan."""
    from governance.pii.services import claim_pii_scan, run_pii_scan

    scan = claim_pii_scan(scan_id, worker=str(getattr(self.request, "hostname", "") or ""))
    if scan is None:
        return "not claimed"
    return run_pii_scan(scan).status


@shared_task(name="governance.recover_stale_pii_scans", queue="default", acks_late=True, ignore_result=True)
def recover_stale_pii_scans() -> dict[str, list[int]]:
    """Resume (or fail, after repeated deaths) the PII jobs whose worker stopped
    responding: scans and redactions (runs every minute from beat)."""
    from governance.pii.services import do_recover_stale_pii_scans, do_recover_stale_redactions

    return {
        "scans": [scan.pk for scan in do_recover_stale_pii_scans()],
        "redactions": [redaction.pk for redaction in do_recover_stale_redactions()],
    }


@shared_task(
    bind=True,
    name="governance.redact_dataset_version",
    queue="scans",
    acks_late=True,
    reject_on_worker_lost=True,
    ignore_result=True,
)
def redact_dataset_version(self: Any, redaction_id: int) -> str:
    """Make the redacted version of a queued redaction: claim it (a queued one,
    or a running one whose worker died, started again), then let the service
    record success or the reason it failed."""
    from governance.pii.services import claim_redaction, run_redaction

    redaction = claim_redaction(redaction_id, worker=str(getattr(self.request, "hostname", "") or ""))
    if redaction is None:
        return "not claimed"
    return run_redaction(redaction).status
