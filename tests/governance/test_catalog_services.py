"""Catalog workflows: immutability, content addressing, recorded changes."""

from __future__ import annotations

import datetime as dt
import io

import pytest
from django.utils import timezone

from governance.models import AuditEvent, Dataset, DatasetVersion
from governance.models.audit import verify_chain
from governance.services import (
    GovernanceInput,
    do_create_dataset,
    do_expire_dataset_versions,
    do_ingest_dataset_version,
    do_revoke_dataset_version,
    do_update_dataset,
    do_update_version_governance,
)
from pedigree.errors import Conflict, ImmutableField, InvalidInput, PermissionDenied
from pedigree.storage import content_key, get_store
from tests.conftest import jsonl

pytestmark = pytest.mark.django_db


def blobs(root) -> list[str]:
    return sorted(p.name for p in (root / "blobs").rglob("*") if p.is_file()) if (root / "blobs").exists() else []


def temp_files(root) -> list[str]:
    return sorted(p.name for p in (root / ".tmp").glob("*")) if (root / ".tmp").exists() else []


def ingest(dataset, data: bytes, actor, filename="d.jsonl", **governance):
    return do_ingest_dataset_version(
        actor=actor,
        dataset=dataset,
        source=io.BytesIO(data),
        filename=filename,
        governance=GovernanceInput(**{"licence": "MIT", **governance}),
    )


def test_a_new_version_is_numbered_hashed_and_stored_under_its_digest(claims_dataset, alice, artifacts_dir):
    data = jsonl({"text": "hello"}, {"text": "world"})
    outcome = ingest(claims_dataset, data, alice)
    version = outcome.version
    import hashlib

    assert outcome.created and version.number == 1
    assert version.sha256 == hashlib.sha256(data).hexdigest()
    assert (version.size_bytes, version.record_count, version.format, version.layout) == (len(data), 2, "jsonl", "text")
    assert get_store().open_read(content_key(version.sha256)).read() == data
    assert version.storage_uri.endswith(version.sha256)


def test_uploading_the_same_bytes_again_returns_the_existing_version(claims_dataset, alice):
    data = jsonl({"text": "same"})
    first = ingest(claims_dataset, data, alice).version
    again = ingest(claims_dataset, data, alice, filename="renamed.jsonl")
    assert not again.created and again.version.pk == first.pk
    assert DatasetVersion.objects.count() == 1


def test_new_bytes_get_the_next_number(claims_dataset, alice):
    ingest(claims_dataset, jsonl({"text": "1"}), alice)
    assert ingest(claims_dataset, jsonl({"text": "2"}), alice).version.number == 2


def test_an_invalid_file_leaves_no_version_no_blob_and_no_temp_file(claims_dataset, alice, artifacts_dir):
    ingest(claims_dataset, jsonl({"text": "good"}), alice)
    before = (blobs(artifacts_dir), AuditEvent.objects.count())
    with pytest.raises(InvalidInput):
        ingest(claims_dataset, b'{"text": "a"}\n{broken\n', alice)
    assert DatasetVersion.objects.count() == 1
    assert (blobs(artifacts_dir), AuditEvent.objects.count()) == before
    assert temp_files(artifacts_dir) == []


def test_an_empty_file_is_refused(claims_dataset, alice):
    with pytest.raises(InvalidInput, match="d.jsonl is empty"):
        ingest(claims_dataset, b"", alice)


def test_a_file_over_the_size_limit_is_refused_and_nothing_is_kept(claims_dataset, alice, settings, artifacts_dir):
    settings.PEDIGREE_MAX_UPLOAD_BYTES = 1000
    with pytest.raises(InvalidInput, match="larger than the upload limit of 1,000 bytes"):
        ingest(claims_dataset, jsonl(*({"text": "x" * 50} for _ in range(100))), alice)
    assert DatasetVersion.objects.count() == 0 and blobs(artifacts_dir) == [] and temp_files(artifacts_dir) == []


def test_an_unknown_licence_is_refused_before_any_byte_is_read(claims_dataset, alice):
    source = io.BytesIO(jsonl({"text": "a"}))
    with pytest.raises(InvalidInput, match="unknown licence 'MIT-ish'") as error:
        do_ingest_dataset_version(
            actor=alice, dataset=claims_dataset, source=source, filename="a.jsonl",
            governance=GovernanceInput(licence="MIT-ish"),
        )
    assert error.value.details["field"] == "licence"
    assert source.tell() == 0


def test_an_expiry_in_the_past_is_refused(claims_dataset, alice):
    with pytest.raises(InvalidInput, match="is not in the future") as error:
        ingest(claims_dataset, jsonl({"text": "a"}), alice, expires_at=dt.date(2020, 1, 1))
    assert error.value.details["field"] == "expires_at"


def test_proprietary_data_needs_its_licence_text(claims_dataset, alice):
    with pytest.raises(InvalidInput, match="needs the licence text"):
        ingest(claims_dataset, jsonl({"text": "a"}), alice, licence="proprietary")


def test_permissions_come_from_the_licence(claims_dataset, alice):
    version = ingest(claims_dataset, jsonl({"text": "a"}), alice, licence="CC-BY-NC-SA-4.0").version
    assert (version.permits_training, version.permits_commercial_use, version.requires_attribution,
            version.requires_share_alike, version.permissions_overridden) == (True, False, True, True, False)


def test_overriding_permissions_needs_a_reason(claims_dataset, alice):
    with pytest.raises(InvalidInput, match="needs a reason"):
        ingest(claims_dataset, jsonl({"text": "a"}), alice, permissions={"commercial_use": True}, licence="CC-BY-NC-4.0")


def test_an_outsider_cannot_add_a_version(claims_dataset, mallory):
    with pytest.raises(PermissionDenied, match="mallory may not change dataset claims-2024"):
        ingest(claims_dataset, jsonl({"text": "a"}), mallory)


def test_only_members_of_the_owning_group_may_create_its_datasets(mallory, claims_team):
    with pytest.raises(PermissionDenied):
        do_create_dataset(actor=mallory, name="sneaky", owner_group=claims_team)


def test_content_fields_of_a_stored_version_cannot_change(make_version, claims_dataset):
    version = make_version(claims_dataset)
    version.record_count = 99
    with pytest.raises(ImmutableField):
        version.save()
    with pytest.raises(ImmutableField, match="cannot change record_count"):
        version.save(update_fields=["record_count"])
    with pytest.raises(ImmutableField):
        version.delete()


def test_governance_changes_are_recorded_with_who_what_and_why(make_version, claims_dataset, erin):
    version = make_version(claims_dataset)
    facts_before = version.facts_version
    updated = do_update_version_governance(
        actor=erin, version=version, changes={"licence": "CC-BY-NC-4.0", "residency_regions": ["eu"]},
        reason="licence corrected after legal review",
    )
    assert (updated.licence, updated.permits_commercial_use, updated.residency_regions) == ("CC-BY-NC-4.0", False, ["eu"])
    assert updated.facts_version == facts_before + 1
    event = AuditEvent.objects.filter(action="dataset_version.governance_updated").get()
    assert event.actor_label == "erin" and event.reason == "licence corrected after legal review"
    assert event.changes["licence"] == ["MIT", "CC-BY-NC-4.0"]
    assert event.changes["permits_commercial_use"] == [True, False]


def test_governance_changes_need_a_reason(make_version, claims_dataset, alice):
    with pytest.raises(InvalidInput, match="a reason is required"):
        do_update_version_governance(actor=alice, version=make_version(claims_dataset), changes={"notes": "x"}, reason=" ")


def test_an_outsider_cannot_change_governance_metadata(make_version, claims_dataset, mallory):
    with pytest.raises(PermissionDenied):
        do_update_version_governance(actor=mallory, version=make_version(claims_dataset), changes={"notes": "x"}, reason="r")


def test_revoking_records_the_reason_and_cannot_happen_twice(make_version, claims_dataset, alice):
    version = do_revoke_dataset_version(actor=alice, version=make_version(claims_dataset), reason="consent withdrawn")
    assert (version.status, version.status_reason, version.status_changed_by) == ("revoked", "consent withdrawn", alice)
    with pytest.raises(Conflict, match="already revoked"):
        do_revoke_dataset_version(actor=alice, version=version, reason="again")


def test_versions_past_their_expiry_date_are_expired(make_version, claims_dataset):
    version = make_version(claims_dataset, expires_at=timezone.localdate() + dt.timedelta(days=1))
    assert do_expire_dataset_versions(today=timezone.localdate()) == []
    expired = do_expire_dataset_versions(today=timezone.localdate() + dt.timedelta(days=2))
    assert [v.pk for v in expired] == [version.pk]
    version.refresh_from_db()
    assert version.status == "expired"


def test_dataset_updates_are_audited(claims_dataset, alice):
    do_update_dataset(actor=alice, dataset=claims_dataset, changes={"labels": {"tier": "gold"}}, reason="tagging")
    event = AuditEvent.objects.filter(action="dataset.updated").get()
    assert event.changes == {"labels": [{}, {"tier": "gold"}]}


def test_the_audit_chain_verifies_and_detects_an_edited_event(make_version, claims_dataset, alice):
    version = make_version(claims_dataset)
    do_revoke_dataset_version(actor=alice, version=version, reason="r")
    report = verify_chain()
    assert report.ok and report.events_checked == 3
    AuditEvent.objects.filter(action="dataset_version.revoked").update(reason="nothing to see")
    report = verify_chain()
    assert not report.ok and "edited" in report.problems[0]


def test_the_audit_chain_detects_a_deleted_event(make_version, claims_dataset, alice):
    make_version(claims_dataset)
    make_version(claims_dataset)
    AuditEvent.objects.filter(sequence=2).delete()
    assert not verify_chain().ok


def test_a_new_owner_group_or_steward_is_a_new_facts_version_of_every_version(make_version, claims_dataset, alice, erin, root, support_team):
    first, second = make_version(claims_dataset), make_version(claims_dataset)
    before = {v.pk: v.facts_version for v in (first, second)}
    do_update_dataset(actor=root, dataset=claims_dataset, changes={"steward": erin}, reason="handover")
    after_steward = {v.pk: v.facts_version for v in claims_dataset.versions.all()}
    assert all(after_steward[pk] == before[pk] + 1 for pk in before)
    erin.groups.add(support_team)
    do_update_dataset(actor=root, dataset=claims_dataset, changes={"owner_group": support_team}, reason="moved")
    assert all(v.facts_version == after_steward[v.pk] + 1 for v in claims_dataset.versions.all())
    do_update_dataset(actor=erin, dataset=claims_dataset, changes={"title": "Claims"}, reason="retitled")
    assert all(v.facts_version == after_steward[v.pk] + 1 for v in claims_dataset.versions.all())


def test_a_dataset_update_from_a_stale_copy_keeps_every_other_change_and_audits_the_true_before(claims_dataset, alice, erin):
    stale = Dataset.objects.get(pk=claims_dataset.pk)  # read before alice's change, as a second request would
    do_update_dataset(actor=alice, dataset=claims_dataset, changes={"title": "Claims A"})
    do_update_dataset(actor=erin, dataset=stale, changes={"description": "every 2024 claim"})
    stored = Dataset.objects.get(pk=claims_dataset.pk)
    assert (stored.title, stored.description) == ("Claims A", "every 2024 claim")
    do_update_dataset(actor=erin, dataset=stale, changes={"title": "Claims B"})
    last = AuditEvent.objects.filter(action="dataset.updated").order_by("-sequence").first()
    assert last is not None and last.changes == {"title": ["Claims A", "Claims B"]}


def test_a_governance_update_from_a_stale_copy_keeps_every_other_change(claims_dataset, make_version, alice, erin):
    version = make_version(claims_dataset)
    stale = DatasetVersion.objects.get(pk=version.pk)
    do_update_version_governance(actor=alice, version=version, changes={"notes": "from the 2024 export"}, reason="notes")
    do_update_version_governance(actor=erin, version=stale, changes={"allowed_purposes": ["support"]}, reason="purpose")
    stored = DatasetVersion.objects.get(pk=version.pk)
    assert (stored.notes, stored.allowed_purposes) == ("from the 2024 export", ["support"])
