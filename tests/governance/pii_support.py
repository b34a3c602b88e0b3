"""Helpers shared by the PII test modules: data with seeded PII, running scans in-process."""

from __future__ import annotations

import json
from typing import Any

from django.contrib.auth.models import User

from governance.models import DatasetVersion
from governance.models.pii import PiiScan
from governance.pii.config import ScanConfig
from governance.pii.services import claim_pii_scan, do_request_pii_scan, run_pii_scan

EMAIL = "maria.garcia@example.com"
SSN = "536-22-8714"
CARD = "4111 1111 1111 1111"


def jsonl_bytes(*texts: str, key: str = "text") -> bytes:
    """A JSONL file of one text field per record."""
    return ("\n".join(json.dumps({key: text}) for text in texts) + "\n").encode()


def pii_records() -> bytes:
    """Four records: two with an email and an SSN, one clean, one with a card."""
    return jsonl_bytes(
        f"Please contact Maria Garcia at {EMAIL} about claim 17.",
        f"Her social security number is {SSN}, on file since 2019.",
        "The router keeps disconnecting after the update.",
        f"Charge the visa card {CARD} for the repair, email {EMAIL}.",
    )


def scan_now(
    version: DatasetVersion,
    *,
    actor: User | None = None,
    config: ScanConfig | None = None,
    workers: int = 1,
    **run_options: Any,
) -> PiiScan:
    """Request a scan and run it here, as the Celery task would."""
    scan = do_request_pii_scan(actor=actor, version=version, config=config, enqueue=False)
    claimed = claim_pii_scan(scan.pk, worker="test")
    assert claimed is not None
    return run_pii_scan(claimed, workers=workers, **run_options)


# A record holding a name and a US social security number.
PERSON_AND_SSN = jsonl_bytes("Maria Garcia's social security number is 536-22-8714.")


def scan_and_review(version: DatasetVersion, *, actor: User, keep: set[str]) -> DatasetVersion:
    """Scan ``version`` with real Presidio, then review it as a steward would:
    every type found but not in ``keep`` is dismissed, with a reason. Returns
    the version with its PII facts: exactly ``keep`` (each must be found)."""
    from governance.pii.services import do_review_pii_entity

    scan = scan_now(version, actor=actor)
    missing = keep - set(scan.found_entity_types)
    assert not missing, f"the scan did not find {sorted(missing)} in {version}"
    for entity in sorted(set(scan.found_entity_types) - keep):
        do_review_pii_entity(actor=actor, version=version, entity_type=entity, decision="dismissed", reason="not personal data here")
    version.refresh_from_db()
    assert sorted(version.pii_types) == sorted(keep)
    return version
