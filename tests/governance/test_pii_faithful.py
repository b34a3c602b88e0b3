"""Issue 9: PII facts must not wait for a human, and redaction must be
faithful to its bytes.

Every string value of a record is scanned (and redacted) under its field
path; one CSV reader (utf-8-sig, incremental) serves ingest, scan and
redaction; the types a redaction edge stops are the ones actually redacted
and not found again by the rescan; a redaction that changes nothing is an
error; ``keep`` keeps; a redaction whose worker died is recovered or failed.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import User

from governance.choices import PiiStatus
from governance.lineage import effective_facts
from governance.lineage.graph import node_for_dataset_version
from governance.models import AuditEvent, Dataset, DatasetVersion
from governance.models.lineage import EdgeRelation, LineageEdge
from governance.models.pii import PiiJobStatus, PiiRedaction, PiiScan
from governance.pii import services
from governance.pii.config import load_config
from governance.pii.records import iter_bytes, iter_records
from governance.pii.redaction import Redactor, redact_stream
from governance.pii.scanner import scan_records
from pedigree.errors import InvalidInput
from pedigree.storage import get_store
from tests.governance.pii_support import EMAIL, SSN, pii_records, scan_now

MakeVersion = Callable[..., DatasetVersion]


def _bytes(version: DatasetVersion) -> bytes:
    return b"".join(get_store().iter_chunks(version.storage_key))


def _redact(version: DatasetVersion, actor: User, operators: dict[str, Any], capture: Any) -> PiiRedaction:
    with capture(execute=True):  # the rescan of the copy runs too
        return services.do_redact_dataset_version(actor=actor, version=version, operators=operators, reason="share")


def _edge(redaction: PiiRedaction) -> LineageEdge:
    assert redaction.result is not None
    return LineageEdge.objects.get(
        upstream=node_for_dataset_version(redaction.source),
        downstream=node_for_dataset_version(redaction.result),
        relation=EdgeRelation.DERIVED_FROM,
    )


@pytest.fixture
def found(claims_dataset: Dataset, make_version: MakeVersion, alice: User) -> DatasetVersion:
    version = make_version(claims_dataset, pii_records())
    scan_now(version, actor=alice)
    version.refresh_from_db()
    return version


# --- Every string value is scanned, per field; redaction covers the same fields ------------

NESTED = (
    json.dumps(
        {
            "text": "The router keeps disconnecting.",
            "customer_email": EMAIL,
            "ssn": SSN,
            "profile": {"contact": {"backup_email": "j.doe@example.org"}},
            "notes": ["call back tomorrow", f"SSN on file: {SSN}"],
            "card_number": 4111111111111111,
        }
    )
    + "\n"
).encode()


def test_every_string_value_of_a_jsonl_record_is_scanned_and_reported_per_field_path() -> None:
    state = scan_records(iter_records(iter_bytes(NESTED), data_format="jsonl"), load_config(), workers=1)
    findings = state["findings"]
    assert "EMAIL_ADDRESS" in findings["customer_email"]
    assert "US_SSN" in findings["ssn"]
    assert "EMAIL_ADDRESS" in findings["profile.contact.backup_email"]
    assert "US_SSN" in findings["notes[]"]
    assert "CREDIT_CARD" in findings["card_number"]  # a number is read as the digits it holds
    assert "text" not in findings


def test_a_jsonl_version_with_email_and_ssn_fields_is_not_reported_clean(
    claims_dataset: Dataset, make_version: MakeVersion, alice: User
) -> None:
    version = make_version(claims_dataset, NESTED)
    scan = scan_now(version, actor=alice)
    version.refresh_from_db()
    assert {"customer_email", "ssn"} <= set(scan.findings.values_list("field", flat=True))
    assert version.pii_status == PiiStatus.PII_FOUND
    assert {"EMAIL_ADDRESS", "US_SSN", "CREDIT_CARD"} <= set(version.pii_types)


def test_every_csv_column_is_scanned_even_one_ingest_typed_as_numbers(
    claims_dataset: Dataset, make_version: MakeVersion, alice: User
) -> None:
    data = b"note,card\nwater damage,4111111111111111\nroof leak,5500000000000004\n"
    version = make_version(claims_dataset, data, filename="cards.csv")
    assert "card" not in version.text_fields  # ingest saw numbers there
    scan = scan_now(version, actor=alice)
    assert scan.findings.filter(field="card", entity_type="CREDIT_CARD").exists()


def test_redaction_covers_every_field_the_scan_reads(
    claims_dataset: Dataset, make_version: MakeVersion, alice: User, django_capture_on_commit_callbacks: Any
) -> None:
    version = make_version(claims_dataset, NESTED)
    scan_now(version, actor=alice)
    version.refresh_from_db()
    redaction = _redact(version, alice, {"DEFAULT": {"type": "replace"}}, django_capture_on_commit_callbacks)
    assert redaction.result is not None
    record = json.loads(_bytes(redaction.result))
    assert record["customer_email"] == "<EMAIL_ADDRESS>"
    assert record["ssn"] == "<US_SSN>"
    assert record["profile"]["contact"]["backup_email"] == "<EMAIL_ADDRESS>"
    assert SSN not in record["notes"][1]
    assert record["card_number"] == "<CREDIT_CARD>"
    assert record["text"] == "The router keeps disconnecting."


# --- One CSV reader ---------------------------------------------------------------------

BOM_CSV = (
    "\ufeffssn,customer_name,note\n"
    "536-22-8714,Maria Garcia,water damage\n"
    "421-55-1234,James Smith,roof leak\n"
).encode("utf-8")


def test_a_csv_starting_with_a_byte_order_mark_has_its_first_column_redacted(
    claims_dataset: Dataset, make_version: MakeVersion, alice: User, django_capture_on_commit_callbacks: Any
) -> None:
    version = make_version(claims_dataset, BOM_CSV, filename="claims.csv")
    scan_now(version, actor=alice)
    version.refresh_from_db()
    assert "US_SSN" in version.pii_types
    redaction = _redact(version, alice, {"DEFAULT": {"type": "replace"}}, django_capture_on_commit_callbacks)
    assert redaction.result is not None
    text = _bytes(redaction.result).decode("utf-8")
    assert "536-22-8714" not in text and "421-55-1234" not in text
    assert text.splitlines()[0] == "ssn,customer_name,note"
    assert "US_SSN" in _edge(redaction).removes_pii_types
    copy = DatasetVersion.objects.get(pk=redaction.result.pk)
    assert "US_SSN" not in copy.pii_types
    assert "US_SSN" not in effective_facts(node=node_for_dataset_version(copy)).pii_types


def test_the_csv_redaction_decodes_a_character_split_across_chunks_whole() -> None:
    data = "city,ssn\nZürich café,536-22-8714\nMünchen,421-55-1234\n".encode()
    redactor = Redactor(load_config(), {"US_SSN": {"type": "replace"}, "DEFAULT": {"type": "keep"}}, salt="s")
    out = io.BytesIO()
    for size in (3, 5, 7, 11):  # byte boundaries inside ü and é
        out = io.BytesIO()
        redact_stream(iter_bytes(data, chunk_size=size), data_format="csv", redactor=redactor, out=out)
        text = out.getvalue().decode("utf-8")
        assert "Zürich café" in text and "München" in text and "\ufffd" not in text
        assert "536-22-8714" not in text


def test_ingest_scan_and_redaction_read_csv_through_the_one_reader() -> None:
    import governance.pii.records as records
    import governance.pii.redaction as redaction
    from governance.ingest import formats

    assert records.csv_lines is formats.csv_lines
    assert redaction.csv_lines is formats.csv_lines
    assert not hasattr(formats, "_decoded_lines")


def test_the_csv_reader_still_names_the_line_of_invalid_utf8_at_ingest() -> None:
    from governance.ingest.formats import csv_lines

    with pytest.raises(InvalidInput, match="line 3: invalid UTF-8"):
        list(csv_lines(iter_bytes(b"a,b\n1,2\n3,\xff\n"), filename="bad.csv"))


# --- What a redaction edge stops ---------------------------------------------------------


def test_a_redaction_edge_stops_only_the_types_actually_redacted(
    found: DatasetVersion, alice: User, django_capture_on_commit_callbacks: Any
) -> None:
    redaction = _redact(
        found, alice, {"EMAIL_ADDRESS": {"type": "replace"}, "DEFAULT": {"type": "keep"}}, django_capture_on_commit_callbacks
    )
    assert _edge(redaction).removes_pii_types == ["EMAIL_ADDRESS"]
    assert redaction.removed_types == ["EMAIL_ADDRESS"]
    copy = effective_facts(node=node_for_dataset_version(redaction.result))
    assert "US_SSN" in copy.pii_types and "CREDIT_CARD" in copy.pii_types
    assert "EMAIL_ADDRESS" not in copy.pii_types


def test_a_type_the_rescan_still_finds_keeps_propagating_from_the_source(
    found: DatasetVersion, alice: User, django_capture_on_commit_callbacks: Any
) -> None:
    # The replacement value is itself an e-mail address: the rescan finds it.
    operators = {"EMAIL_ADDRESS": {"type": "replace", "new_value": "someone@example.net"}, "DEFAULT": {"type": "replace"}}
    redaction = _redact(found, alice, operators, django_capture_on_commit_callbacks)
    assert redaction.result is not None
    rescan = PiiScan.objects.get(version=redaction.result)
    assert "EMAIL_ADDRESS" in rescan.found_entity_types
    assert "EMAIL_ADDRESS" in redaction.removed_types  # it was redacted...
    edge = _edge(redaction)
    assert "EMAIL_ADDRESS" not in edge.removes_pii_types  # ...but the edge no longer stops it
    assert "US_SSN" in edge.removes_pii_types
    explained = effective_facts(node=node_for_dataset_version(redaction.result), explain=True)
    email = next(item for item in explained.explanations["pii_types"] if item["value"] == "EMAIL_ADDRESS")
    sources = {reason["source"]["label"] for reason in email["because"]}
    assert f"{found.dataset.name} v{found.number}" in sources


# --- Nothing to redact; keep keeps ----------------------------------------------------------


def test_a_redaction_that_would_change_nothing_is_an_error_and_makes_no_version(
    found: DatasetVersion, alice: User, django_capture_on_commit_callbacks: Any
) -> None:
    before = DatasetVersion.objects.count()
    with pytest.raises(InvalidInput, match="nothing to redact"):
        _redact(found, alice, {"DEFAULT": {"type": "keep"}}, django_capture_on_commit_callbacks)
    assert DatasetVersion.objects.count() == before
    redaction = PiiRedaction.objects.get(source=found)
    assert redaction.status == PiiJobStatus.FAILED and "nothing to redact" in redaction.error
    assert redaction.result is None


def test_keep_as_the_default_keeps_every_type_not_named(
    found: DatasetVersion, alice: User, django_capture_on_commit_callbacks: Any
) -> None:
    redaction = _redact(
        found, alice, {"US_SSN": {"type": "replace"}, "DEFAULT": {"type": "keep"}}, django_capture_on_commit_callbacks
    )
    assert redaction.result is not None
    text = _bytes(redaction.result).decode()
    assert SSN not in text and "<US_SSN>" in text
    assert EMAIL in text  # kept, as the audit row says
    event = AuditEvent.objects.get(action=services.ACTION_VERSION_REDACTED)
    assert event.changes["operators"]["DEFAULT"] == {"type": "keep"}
    assert "EMAIL_ADDRESS" in event.changes["entities_kept"]
    assert set(event.changes["entities_redacted"]) == {"US_SSN"}


def test_records_where_nothing_was_redacted_keep_their_bytes(
    found: DatasetVersion, alice: User, django_capture_on_commit_callbacks: Any
) -> None:
    redaction = _redact(found, alice, {"DEFAULT": {"type": "replace"}}, django_capture_on_commit_callbacks)
    assert redaction.result is not None
    original = _bytes(found).splitlines()
    redacted = _bytes(redaction.result).splitlines()
    assert original[2] == redacted[2]  # the clean record, byte for byte


# --- A redaction whose worker died ------------------------------------------------------------


def _stale_running(found: DatasetVersion, alice: User, attempts: int) -> PiiRedaction:
    redaction = services.do_request_redaction(
        actor=alice, version=found, operators={"DEFAULT": {"type": "replace"}}, enqueue=False
    )
    PiiRedaction.objects.filter(pk=redaction.pk).update(
        status=PiiJobStatus.RUNNING, attempts=attempts, heartbeat_at="2020-01-01T00:00:00Z", worker="dead"
    )
    return redaction


def test_a_redaction_whose_worker_died_is_claimed_again_and_completed(
    found: DatasetVersion, alice: User, settings: Any, django_capture_on_commit_callbacks: Any
) -> None:
    redaction = _stale_running(found, alice, attempts=1)
    settings.PEDIGREE_PII_SCAN_STALE_SECONDS = 60
    with django_capture_on_commit_callbacks(execute=True):
        from governance.tasks import recover_stale_pii_scans

        recovered = recover_stale_pii_scans.apply().get()
    assert recovered["redactions"] == [redaction.pk]
    redaction.refresh_from_db()
    assert redaction.status == PiiJobStatus.COMPLETED and redaction.attempts == 2
    assert redaction.result is not None and SSN not in _bytes(redaction.result).decode()


def test_a_running_redaction_with_a_live_heartbeat_is_not_taken_over(
    found: DatasetVersion, alice: User, settings: Any
) -> None:
    redaction = _stale_running(found, alice, attempts=1)
    PiiRedaction.objects.filter(pk=redaction.pk).update(heartbeat_at=services.timezone.now())
    settings.PEDIGREE_PII_SCAN_STALE_SECONDS = 60
    assert services.claim_redaction(redaction.pk, worker="second") is None
    assert services.do_recover_stale_redactions() == []


def test_a_redaction_whose_worker_keeps_dying_is_failed(found: DatasetVersion, alice: User) -> None:
    redaction = _stale_running(found, alice, attempts=services.MAX_ATTEMPTS)
    [failed] = services.do_recover_stale_redactions()
    assert failed.pk == redaction.pk
    assert failed.status == PiiJobStatus.FAILED and "stopped responding" in failed.error
    assert AuditEvent.objects.filter(action=services.ACTION_REDACTION_FAILED).exists()


def test_a_worker_that_was_taken_over_cannot_complete_the_redaction(
    found: DatasetVersion, alice: User, settings: Any
) -> None:
    redaction = services.do_request_redaction(
        actor=alice, version=found, operators={"DEFAULT": {"type": "replace"}}, enqueue=False
    )
    first = services.claim_redaction(redaction.pk, worker="first")
    assert first is not None
    settings.PEDIGREE_PII_SCAN_STALE_SECONDS = 0
    second = services.claim_redaction(redaction.pk, worker="second")
    assert second is not None and second.attempts == 2
    outcome = services.run_redaction(first)  # the first worker wakes up: it must not finish it
    assert outcome.status == PiiJobStatus.RUNNING and outcome.result is None
    assert DatasetVersion.objects.filter(derived_from=found).count() == 0
    settings.PEDIGREE_PII_SCAN_STALE_SECONDS = 120
    done = services.run_redaction(second)
    assert done.status == PiiJobStatus.COMPLETED and done.result is not None
