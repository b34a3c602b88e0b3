"""Redacted copies: a new immutable version derived from the original, with the
operators recorded, scanned again so its report states the residual PII."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import User

from governance.choices import PiiStatus
from governance.models import AuditEvent, Dataset, DatasetVersion
from governance.models.pii import PiiScan, PiiScanStatus
from governance.pii.redactions import ACTION_VERSION_REDACTED, do_redact_dataset_version
from pedigree.errors import Conflict, InvalidInput, PermissionDenied
from pedigree.storage import get_store
from tests.governance.pii_support import CARD, EMAIL, SSN, jsonl_bytes, pii_records, scan_now

MakeVersion = Callable[..., DatasetVersion]


@pytest.fixture
def found(claims_dataset: Dataset, make_version: MakeVersion, alice: User) -> DatasetVersion:
    version = make_version(claims_dataset, pii_records())
    scan_now(version, actor=alice)
    version.refresh_from_db()
    return version


def _redact(version: DatasetVersion, actor: User, operators: dict[str, Any], capture: Any) -> Any:
    with capture(execute=True):
        return do_redact_dataset_version(actor=actor, version=version, operators=operators, reason="share with vendors")


def _texts(version: DatasetVersion) -> list[str]:
    data = b"".join(get_store().iter_chunks(version.storage_key))
    return [json.loads(line)["text"] for line in data.splitlines() if line.strip()]


def test_redaction_creates_a_new_version_derived_from_the_original(
    found: DatasetVersion, alice: User, django_capture_on_commit_callbacks: Any
) -> None:
    redaction = _redact(found, alice, {"DEFAULT": {"type": "replace"}}, django_capture_on_commit_callbacks)
    redacted = redaction.result
    assert redacted.derived_from_id == found.pk
    assert redacted.number == found.number + 1
    assert redacted.sha256 != found.sha256
    assert redaction.operators["DEFAULT"] == {"type": "replace"}
    assert redacted.licence == found.licence


def test_replace_puts_the_entity_type_in_place_of_the_value(
    found: DatasetVersion, alice: User, django_capture_on_commit_callbacks: Any
) -> None:
    redaction = _redact(found, alice, {"DEFAULT": {"type": "replace"}}, django_capture_on_commit_callbacks)
    texts = _texts(redaction.result)
    assert "<EMAIL_ADDRESS>" in texts[0] and EMAIL not in texts[0]
    assert "<US_SSN>" in texts[1]


def test_mask_and_hash_operators_apply_per_entity_type(
    found: DatasetVersion, alice: User, django_capture_on_commit_callbacks: Any
) -> None:
    operators = {"EMAIL_ADDRESS": {"type": "mask"}, "US_SSN": {"type": "hash"}, "DEFAULT": {"type": "replace"}}
    texts = _texts(_redact(found, alice, operators, django_capture_on_commit_callbacks).result)
    assert "*" * len(EMAIL) in texts[0]
    assert SSN not in texts[1] and len([w for w in texts[1].split() if len(w.strip(",")) == 64]) == 1


def test_hashing_uses_a_per_dataset_salt_so_equal_values_hash_alike(
    found: DatasetVersion, alice: User, django_capture_on_commit_callbacks: Any
) -> None:
    operators = {"EMAIL_ADDRESS": {"type": "hash"}, "DEFAULT": {"type": "keep"}}
    texts = _texts(_redact(found, alice, operators, django_capture_on_commit_callbacks).result)
    first = next(w for w in texts[0].split() if len(w) == 64)
    last = next(w.strip(".,") for w in texts[3].split() if len(w.strip(".,")) == 64)
    assert first == last


def test_drop_removes_the_whole_record(
    found: DatasetVersion, alice: User, django_capture_on_commit_callbacks: Any
) -> None:
    redaction = _redact(found, alice, {"CREDIT_CARD": {"type": "drop"}, "DEFAULT": {"type": "replace"}}, django_capture_on_commit_callbacks)
    assert redaction.records_dropped == 1
    assert redaction.result.record_count == 3
    assert all(CARD not in text for text in _texts(redaction.result))


def test_the_redacted_version_is_scanned_again_and_is_clean_when_every_type_was_replaced(
    found: DatasetVersion, alice: User, django_capture_on_commit_callbacks: Any
) -> None:
    redaction = _redact(found, alice, {"DEFAULT": {"type": "replace"}}, django_capture_on_commit_callbacks)
    rescan = PiiScan.objects.get(version=redaction.result)
    redaction.result.refresh_from_db()
    assert rescan.trigger == "redaction" and rescan.status == PiiScanStatus.COMPLETED
    assert rescan.found_entity_types == []  # every type found was replaced, and placeholders are not PII
    assert redaction.result.pii_status == PiiStatus.CLEAN


def test_keeping_a_type_leaves_it_as_residual_pii_in_the_rescan(
    found: DatasetVersion, alice: User, django_capture_on_commit_callbacks: Any
) -> None:
    redaction = _redact(found, alice, {"US_SSN": {"type": "keep"}, "DEFAULT": {"type": "replace"}}, django_capture_on_commit_callbacks)
    rescan = PiiScan.objects.get(version=redaction.result)
    redaction.result.refresh_from_db()
    assert "US_SSN" in rescan.found_entity_types
    assert redaction.result.pii_status == PiiStatus.PII_FOUND


def test_redaction_is_recorded_in_the_audit_log(
    found: DatasetVersion, alice: User, django_capture_on_commit_callbacks: Any
) -> None:
    _redact(found, alice, {"DEFAULT": {"type": "replace"}}, django_capture_on_commit_callbacks)
    event = AuditEvent.objects.get(action=ACTION_VERSION_REDACTED)
    assert event.reason == "share with vendors" and event.changes["redacted_version"] == "claims-2024 v2"


def test_a_version_without_pii_cannot_be_redacted(
    claims_dataset: Dataset, make_version: MakeVersion, alice: User
) -> None:
    version = make_version(claims_dataset, jsonl_bytes("no personal data here"))
    scan_now(version, actor=alice)
    version.refresh_from_db()
    with pytest.raises(Conflict, match="no PII to redact"):
        do_redact_dataset_version(actor=alice, version=version, operators={"DEFAULT": "replace"})


def test_an_unknown_operator_is_refused_naming_the_entity_type(found: DatasetVersion, alice: User) -> None:
    with pytest.raises(InvalidInput, match="operators.US_SSN: type must be one of"):
        do_redact_dataset_version(actor=alice, version=found, operators={"US_SSN": {"type": "shred"}})


def test_an_outsider_cannot_redact(found: DatasetVersion, mallory: User) -> None:
    with pytest.raises(PermissionDenied):
        do_redact_dataset_version(actor=mallory, version=found, operators={"DEFAULT": "replace"})


def test_a_csv_version_is_redacted_column_by_column(
    claims_dataset: Dataset, make_version: MakeVersion, alice: User, django_capture_on_commit_callbacks: Any
) -> None:
    data = b"claim_id,customer_name,ssn,note\nC1,Maria Garcia,536-22-8714,water damage\nC2,James Smith,421-55-1234,roof leak\n"
    version = make_version(claims_dataset, data, filename="claims.csv")
    scan_now(version, actor=alice)
    version.refresh_from_db()
    redaction = _redact(version, alice, {"DEFAULT": {"type": "replace"}}, django_capture_on_commit_callbacks)
    text = b"".join(get_store().iter_chunks(redaction.result.storage_key)).decode()
    assert text.splitlines()[0] == "claim_id,customer_name,ssn,note"
    assert "536-22-8714" not in text and "<US_SSN>" in text and "C1," in text
