"""Scans and redactions on a real Celery worker process.

Each test starts ``celery -A pedigree worker`` as a subprocess with the test's
settings, database and artifact folder, consuming from a real broker: Redis
(what users scale out to) or kombu's filesystem transport (the embedded
default of ``make run``). Tasks are not eager here: the API call enqueues
the task on the broker, and only the worker process can run it.

Then the worker is killed with SIGKILL in the middle of a task (its whole
process group: the Celery parent, its prefork child and any scan pool): the
result must never be half-written. A killed scan stays ``running`` with its
checkpoint and the version stays ``scanning``, never ``clean``; a killed
redaction leaves no new version and no committed blob.

The worker opens the test database itself, so the tests use a real,
committed database (``transactional_db``): on SQLite the test database is a
file (see ``pedigree/test_settings.py``), on PostgreSQL the test database.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connection

from governance.choices import AuditAction, PiiStatus
from governance.models import AuditEvent, Dataset, DatasetVersion
from governance.models.pii import PiiJobStatus, PiiRedaction, PiiScan, PiiScanStatus
from governance.pii.scanner import FINGERPRINT_MODULUS, position_key
from pedigree.celery import app
from tests.conftest import api_client_for
from tests.governance.pii_support import jsonl_bytes, pii_records, scan_now

ROOT = Path(__file__).resolve().parents[1]
REQUIRE_SERVICES = os.environ.get("PEDIGREE_REQUIRE_SERVICES") == "1"
# A cold worker imports Django, Celery and Presidio and loads spaCy: slow on a busy machine.
WORKER_TIMEOUT = 180.0
# Enough records that the scan takes several checkpoints (every 2 s) and runs
# on the scan's process pool (POOL_MIN_RECORDS), which the kill must take down too.
KILL_RECORDS = 3000

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@dataclass
class Broker:
    """A broker both this process and the worker use: its URL and transport options."""

    name: str
    url: str
    transport_options: dict[str, Any]
    worker_env: dict[str, str]


def _database_url() -> str:
    """A URL of the (committed) test database that another process can open."""
    settings = connection.settings_dict
    if settings["ENGINE"] == "django.db.backends.sqlite3":
        name = str(settings["NAME"])
        if name.startswith("file:") or name == ":memory:":
            pytest.fail(
                "the SQLite test database is in memory, where a worker process cannot see it: "
                "pedigree/test_settings.py must give it a file (DATABASES['default']['TEST']['NAME'])"
            )
        return f"sqlite:///{name}"
    user = settings["USER"] or "postgres"
    password = f":{settings['PASSWORD']}" if settings.get("PASSWORD") else ""
    return f"postgres://{user}{password}@{settings['HOST'] or '127.0.0.1'}:{settings['PORT'] or 5432}/{settings['NAME']}"


@pytest.fixture(params=["redis", "filesystem"])
def broker(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Broker]:
    """The broker of one test: Redis (TEST_REDIS_URL, flushed) or a fresh folder queue."""
    if request.param == "redis":
        url = os.environ.get("TEST_REDIS_URL")
        if not url:
            if REQUIRE_SERVICES:
                pytest.fail("TEST_REDIS_URL is not set: run the suite through `make test`")
            pytest.skip("no Redis: set TEST_REDIS_URL (make test provides one)")
        import redis

        redis.Redis.from_url(url).flushdb()
        yield Broker("redis", url, {}, {"CELERY_BROKER_URL": url})
        redis.Redis.from_url(url).flushdb()
        return
    var = tmp_path / "worker-var"
    folders = {name: var / "celery" / name for name in ("queue", "processed", "control")}
    for folder in folders.values():
        folder.mkdir(parents=True)
    # The same folders pedigree/settings.py derives from PEDIGREE_VAR in the worker.
    options = {
        "data_folder_in": str(folders["queue"]),
        "data_folder_out": str(folders["queue"]),
        "processed_folder": str(folders["processed"]),
        "control_folder": str(folders["control"]),
        "store_processed": False,
    }
    yield Broker("filesystem", "filesystem://", options, {"CELERY_BROKER_URL": "filesystem://", "PEDIGREE_VAR": str(var)})


@pytest.fixture
def not_eager(broker: Broker) -> Iterator[Broker]:
    """Send this process's tasks to the broker instead of running them eagerly."""
    saved = {key: app.conf[key] for key in ("task_always_eager", "broker_url", "broker_transport_options")}

    def reset_connections() -> None:
        app._pool = None  # the cached connection and producer pools hold the old broker
        app.amqp._producer_pool = None

    app.conf.update(task_always_eager=False, broker_url=broker.url, broker_transport_options=broker.transport_options)
    reset_connections()
    yield broker
    app.conf.update(saved)
    reset_connections()


@dataclass
class Worker:
    """A running ``celery worker`` subprocess (its own process group)."""

    process: subprocess.Popen[bytes]
    log: Path

    def kill(self) -> None:
        """SIGKILL the worker and everything it started (prefork child, scan pool)."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        """Stop it (SIGTERM, then SIGKILL after 20 s)."""
        if self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.kill()

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-4000:] if self.log.exists() else ""


@pytest.fixture
def start_worker(not_eager: Broker, settings: Any, tmp_path: Path) -> Iterator[Callable[..., Worker]]:
    """Start ``celery -A pedigree worker`` on the scans and default queues, with
    this test's database, artifact folder and broker; stop it after the test."""
    started: list[Worker] = []

    def start(**extra_env: str) -> Worker:
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "pedigree.test_settings",
            "CELERY_TASK_ALWAYS_EAGER": "0",
            "DATABASE_URL": _database_url(),
            "PEDIGREE_ARTIFACTS": str(settings.PEDIGREE_ARTIFACTS),
            "PYTHONUNBUFFERED": "1",
            **not_eager.worker_env,
            **extra_env,
        }
        log = tmp_path / f"worker-{len(started)}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [
                    sys.executable, "-m", "celery", "-A", "pedigree", "worker",
                    "--queues", "scans,default", "--concurrency", "1", "--pool", "prefork",
                    "--without-gossip", "--without-mingle", "--without-heartbeat",
                    "--loglevel", "INFO", "--hostname", f"test-{len(started)}@%h",
                ],
                cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )
        worker = Worker(process, log)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()


def wait_for(condition: Callable[[], Any], worker: Worker, what: str, timeout: float = WORKER_TIMEOUT) -> Any:
    """Poll ``condition`` until it returns something truthy; fail with the worker's log."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        if worker.process.poll() is not None:
            pytest.fail(f"the worker exited ({worker.process.returncode}) before {what}:\n{worker.tail()}")
        time.sleep(0.2)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}; worker log:\n{worker.tail()}")


def _ticket(index: int) -> str:
    return f"Ticket {index}: write to user{index}@example.com or call 212-555-{1000 + index % 9000:04d}."


def _texts(count: int) -> bytes:
    return jsonl_bytes(*(_ticket(i) for i in range(count)))


def _email_fingerprint(count: int) -> int:
    """The fingerprint a scan of ``_texts(count)`` gives its emails: each record's
    one email at its exact offsets, counted once (see scanner.position_key)."""
    total = 0
    for index in range(count):
        start = _ticket(index).index("user")
        end = _ticket(index).index(" or call")
        total = (total + position_key(index, start, end)) % FINGERPRINT_MODULUS
    return total


# --- A scan requested through the API runs on the worker ---------------------------


def test_a_scan_requested_through_the_api_completes_on_a_worker_process(
    broker: Broker,
    start_worker: Callable[..., Worker],
    claims_dataset: Dataset,
    make_version: Callable[..., DatasetVersion],
    alice: User,
) -> None:
    version = make_version(claims_dataset, pii_records())
    response = api_client_for(alice).post(f"/api/v1/datasets/claims-2024/versions/{version.number}/pii/scans/", {}, format="json")
    assert response.status_code == 202, response.content
    scan_id = response.json()["id"]
    time.sleep(1.0)  # no worker yet: nothing runs the task in this process
    assert PiiScan.objects.get(pk=scan_id).status == PiiScanStatus.QUEUED

    worker = start_worker()
    scan = wait_for(
        lambda: PiiScan.objects.filter(pk=scan_id, status__in=[PiiScanStatus.COMPLETED, PiiScanStatus.FAILED]).first(),
        worker, f"scan #{scan_id} to finish on the {broker.name} broker",
    )
    version.refresh_from_db()
    assert scan.status == PiiScanStatus.COMPLETED, scan.error
    assert scan.worker.startswith("test-0@"), scan.worker  # claimed by the worker process, not by this one
    assert scan.records_done == 4 and scan.totals["records_scanned"] == 4
    assert {"EMAIL_ADDRESS", "US_SSN", "CREDIT_CARD"} <= set(scan.found_entity_types)
    assert version.pii_status == PiiStatus.PII_FOUND


# --- A worker killed in the middle of a task -----------------------------------------


def test_a_worker_killed_mid_scan_leaves_the_scan_running_and_the_version_never_clean(
    broker: Broker,
    start_worker: Callable[..., Worker],
    claims_dataset: Dataset,
    make_version: Callable[..., DatasetVersion],
    alice: User,
) -> None:
    version = make_version(claims_dataset, _texts(KILL_RECORDS))
    response = api_client_for(alice).post(f"/api/v1/datasets/claims-2024/versions/{version.number}/pii/scans/", {}, format="json")
    assert response.status_code == 202, response.content
    scan_id = response.json()["id"]
    worker = start_worker()
    wait_for(
        lambda: PiiScan.objects.filter(pk=scan_id, records_done__gt=0).exists()
        or PiiScan.objects.filter(pk=scan_id).exclude(status__in=[PiiScanStatus.QUEUED, PiiScanStatus.RUNNING]).exists(),
        worker, "the scan's first checkpoint",
    )
    worker.kill()

    scan = PiiScan.objects.get(pk=scan_id)
    version.refresh_from_db()
    assert scan.status == PiiScanStatus.RUNNING, f"the scan ended ({scan.status}) before the worker could be killed"
    assert 0 < scan.records_done < KILL_RECORDS
    assert scan.finished_at is None and not scan.found_entity_types
    assert version.pii_status == PiiStatus.SCANNING
    assert not PiiScan.objects.filter(version=version, status=PiiScanStatus.COMPLETED).exists()


@pytest.mark.parametrize("broker", ["filesystem"], indirect=True)
def test_a_scan_killed_on_one_worker_is_finished_by_the_next_to_the_whole_report(
    start_worker: Callable[..., Worker],
    claims_dataset: Dataset,
    make_version: Callable[..., DatasetVersion],
    alice: User,
) -> None:
    version = make_version(claims_dataset, _texts(KILL_RECORDS))
    response = api_client_for(alice).post(f"/api/v1/datasets/claims-2024/versions/{version.number}/pii/scans/", {}, format="json")
    scan_id = response.json()["id"]
    first = start_worker()
    wait_for(lambda: PiiScan.objects.filter(pk=scan_id, records_done__gt=0).exists(), first, "the scan's first checkpoint")
    first.kill()
    assert PiiScan.objects.get(pk=scan_id).status == PiiScanStatus.RUNNING

    # The next worker counts a scan without a heartbeat for 1 s as dead; the
    # hourly recovery task (sent here rather than waiting for beat) queues it again.
    second = start_worker(PEDIGREE_PII_SCAN_STALE_SECONDS="1")
    time.sleep(1.5)
    app.send_task("governance.recover_stale_pii_scans", queue="default")
    scan = wait_for(
        lambda: PiiScan.objects.filter(pk=scan_id, status__in=[PiiScanStatus.COMPLETED, PiiScanStatus.FAILED]).first(),
        second, "the resumed scan to finish",
    )
    assert scan.status == PiiScanStatus.COMPLETED, scan.error
    assert scan.attempts == 2 and scan.worker.startswith("test-1@")
    # Every record scanned once, none twice: each email found at its exact offsets.
    assert scan.totals["records_scanned"] == KILL_RECORDS
    emails = scan.totals["entities"]["EMAIL_ADDRESS"]
    assert emails == {"count": KILL_RECORDS, "records": KILL_RECORDS, "fingerprint": _email_fingerprint(KILL_RECORDS)}
    assert all(figures["records"] <= KILL_RECORDS for figures in scan.totals["entities"].values())


@pytest.mark.parametrize("broker", ["redis"], indirect=True)
def test_a_worker_killed_mid_redaction_leaves_no_redacted_version(
    start_worker: Callable[..., Worker],
    claims_dataset: Dataset,
    make_version: Callable[..., DatasetVersion],
    alice: User,
    settings: Any,
) -> None:
    version = make_version(claims_dataset, _texts(1500))
    scan_now(version, actor=alice, workers=2)
    version.refresh_from_db()
    assert version.pii_status == PiiStatus.PII_FOUND
    blobs_before = sorted(p for p in Path(settings.PEDIGREE_ARTIFACTS).rglob("*") if p.is_file() and ".tmp" not in p.parts)

    response = api_client_for(alice).post(
        f"/api/v1/datasets/claims-2024/versions/{version.number}/pii/redact/",
        {"operators": {"DEFAULT": {"type": "replace"}}, "reason": "share with vendors"},
        format="json",
    )
    assert response.status_code == 202, response.content
    redaction_id = response.json()["id"]
    worker = start_worker()
    wait_for(
        lambda: PiiRedaction.objects.filter(pk=redaction_id).exclude(status=PiiJobStatus.QUEUED).exists(),
        worker, "the worker to claim the redaction",
    )
    time.sleep(4.0)  # past loading the analyzer, well inside redacting 1,500 records
    worker.kill()

    redaction = PiiRedaction.objects.get(pk=redaction_id)
    assert redaction.status == PiiJobStatus.RUNNING, f"the redaction ended ({redaction.status}) before the worker could be killed"
    assert redaction.result_id is None
    assert list(DatasetVersion.objects.filter(dataset=claims_dataset).values_list("number", flat=True)) == [version.number]
    assert not DatasetVersion.objects.filter(derived_from=version).exists()
    assert not AuditEvent.objects.filter(action=AuditAction.VERSION_CREATED, changes__derived_from=version.label).exists()
    blobs_after = sorted(p for p in Path(settings.PEDIGREE_ARTIFACTS).rglob("*") if p.is_file() and ".tmp" not in p.parts)
    assert blobs_after == blobs_before  # at most an uncommitted temporary upload, never a content-addressed blob
