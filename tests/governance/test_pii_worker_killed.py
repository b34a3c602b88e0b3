"""A worker killed (SIGKILL) in the middle of a scan: the scan is left running
with its checkpoint, the version is never reported clean, and another worker
resumes it to the same report a whole scan gives.

Needs a database a second process can reach (PostgreSQL); skipped on SQLite,
whose test database lives in this process's memory.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.contrib.auth.models import User
from django.db import connection

from governance.choices import PiiStatus
from governance.models import Dataset, DatasetVersion
from governance.models.pii import PiiScan, PiiScanStatus
from governance.pii import services
from tests.governance.pii_support import jsonl_bytes, scan_now

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        django_settings.DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3",
        reason="the scan runs in a second process, which cannot see SQLite's in-memory test database",
    ),
]


@pytest.mark.django_db(transaction=True)
def test_a_scan_killed_mid_way_is_resumed_by_another_worker_to_the_full_report(
    claims_dataset: Dataset, make_version: Any, alice: User, settings: Any
) -> None:
    texts = [f"Ticket {i}: write to user{i}@example.com or call 212-555-{1000 + i % 9000:04d}." for i in range(1500)]
    version: DatasetVersion = make_version(claims_dataset, jsonl_bytes(*texts))
    database = connection.settings_dict
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "pedigree.test_settings",
        "DATABASE_URL": f"postgres://{database['USER']}@{database['HOST']}:{database['PORT']}/{database['NAME']}",
        "PEDIGREE_ARTIFACTS": settings.PEDIGREE_ARTIFACTS,
    }
    worker = subprocess.Popen(
        [sys.executable, "manage.py", "scan", "claims-2024", str(version.number), "--user", "alice", "--workers", "1", "--no-progress"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            scan = PiiScan.objects.filter(version=version).first()
            if scan is not None and scan.records_done > 0:
                break
            assert worker.poll() is None, "the scan finished before it could be killed"
            time.sleep(0.2)
        worker.send_signal(signal.SIGKILL)
    finally:
        worker.wait(timeout=30)

    killed = PiiScan.objects.get(version=version)
    version.refresh_from_db()
    assert killed.status == PiiScanStatus.RUNNING and 0 < killed.records_done < 1500
    assert version.pii_status == PiiStatus.SCANNING

    settings.PEDIGREE_PII_SCAN_STALE_SECONDS = 0
    resumed = services.claim_pii_scan(killed.pk, worker="second")
    assert resumed is not None
    done = services.run_pii_scan(resumed, workers=1)
    whole = scan_now(version, actor=alice)
    version.refresh_from_db()
    assert done.status == PiiScanStatus.COMPLETED and done.totals["records_scanned"] == 1500
    assert done.totals["entities"] == whole.totals["entities"]  # counts, records and position checksums
    assert version.pii_status == PiiStatus.PII_FOUND


_REDACT_IN_A_WORKER = """
import django, sys
django.setup()
from governance.pii import services
redaction = services.claim_redaction(int(sys.argv[1]), worker="doomed")
assert redaction is not None
services.run_redaction(redaction)
"""


@pytest.mark.django_db(transaction=True)
def test_a_redaction_killed_mid_way_is_recovered_by_another_worker(
    claims_dataset: Dataset, make_version: Any, alice: User, settings: Any, django_capture_on_commit_callbacks: Any
) -> None:
    from governance.models.pii import PiiJobStatus, PiiRedaction

    texts = [f"Ticket {i}: write to user{i}@example.com about claim {i}." for i in range(1500)]
    version: DatasetVersion = make_version(claims_dataset, jsonl_bytes(*texts))
    scan_now(version, actor=alice)
    version.refresh_from_db()
    redaction = services.do_request_redaction(
        actor=alice, version=version, operators={"DEFAULT": {"type": "replace"}}, enqueue=False
    )
    database = connection.settings_dict
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "pedigree.test_settings",
        "DATABASE_URL": f"postgres://{database['USER']}@{database['HOST']}:{database['PORT']}/{database['NAME']}",
        "PEDIGREE_ARTIFACTS": settings.PEDIGREE_ARTIFACTS,
    }
    worker = subprocess.Popen(
        [sys.executable, "-c", _REDACT_IN_A_WORKER, str(redaction.pk)],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            row = PiiRedaction.objects.get(pk=redaction.pk)
            if row.status == PiiJobStatus.RUNNING and row.heartbeat_at and row.started_at and row.heartbeat_at > row.started_at:
                break  # it is redacting (a heartbeat after the claim)
            assert worker.poll() is None, "the redaction finished before it could be killed"
            time.sleep(0.2)
        worker.send_signal(signal.SIGKILL)
    finally:
        worker.wait(timeout=30)

    killed = PiiRedaction.objects.get(pk=redaction.pk)
    assert killed.status == PiiJobStatus.RUNNING and killed.worker == "doomed" and killed.result is None
    assert not DatasetVersion.objects.filter(derived_from=version).exists()

    settings.PEDIGREE_PII_SCAN_STALE_SECONDS = 0
    with django_capture_on_commit_callbacks(execute=True):
        [recovered] = services.do_recover_stale_redactions()
    assert recovered.pk == redaction.pk
    done = PiiRedaction.objects.get(pk=redaction.pk)
    assert done.status == PiiJobStatus.COMPLETED and done.attempts == 2 and done.result is not None
    assert done.records_out == 1500 and "EMAIL_ADDRESS" in done.removed_types
