"""The catalog's management commands."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import CommandError, call_command

from governance.models import DatasetVersion

pytestmark = pytest.mark.django_db


def test_ingest_adds_a_version_from_a_file(tmp_path, alice, claims_dataset):
    path = tmp_path / "claims.jsonl"
    path.write_text(json.dumps({"text": "a claim"}) + "\n")
    out = io.StringIO()
    call_command("ingest", str(path), "--dataset", "claims-2024", "--licence", "CC-BY-4.0", "--region", "eu",
                 "--user", "alice", "--no-progress", stdout=out)
    version = DatasetVersion.objects.get()
    assert (version.licence, version.residency_regions, version.created_by) == ("CC-BY-4.0", ["eu"], alice)
    assert "created claims-2024 v1: 1 records" in out.getvalue()


def test_ingest_reports_the_same_errors_as_the_api(tmp_path, alice, claims_dataset):
    path = tmp_path / "bad.csv"
    path.write_text("a,b\n1,2\n3\n")
    with pytest.raises(CommandError, match=r"bad.csv: row 3 \(line 3\) has 1 columns; the header has 2"):
        call_command("ingest", str(path), "--dataset", "claims-2024", "--licence", "MIT", "--user", "alice", "--no-progress")
    assert DatasetVersion.objects.count() == 0


def test_ingest_can_create_the_dataset(tmp_path, alice, claims_team):
    path = tmp_path / "notes.txt"
    path.write_text("line one\nline two\n")
    call_command("ingest", str(path), "--dataset", "notes", "--licence", "MIT", "--user", "alice", "--create",
                 "--owner", "claims-team", "--no-progress", stdout=io.StringIO())
    assert DatasetVersion.objects.get().dataset.owner_group == claims_team


def test_ingest_refuses_an_outsider(tmp_path, mallory, claims_dataset):
    path = tmp_path / "a.txt"
    path.write_text("x\n")
    with pytest.raises(CommandError, match="mallory may not change dataset claims-2024"):
        call_command("ingest", str(path), "--dataset", "claims-2024", "--licence", "MIT", "--user", "mallory", "--no-progress")


def test_verify_audit_passes_then_fails_after_tampering(make_version, claims_dataset):
    from governance.models import AuditEvent

    make_version(claims_dataset)
    out = io.StringIO()
    call_command("verify_audit", stdout=out)
    assert "audit log intact: 2 events verified" in out.getvalue()
    AuditEvent.objects.filter(sequence=1).update(actor_label="someone-else")
    with pytest.raises(CommandError, match="audit log broken"):
        call_command("verify_audit", stdout=io.StringIO(), stderr=io.StringIO())


def test_seed_demo_is_idempotent(settings, tmp_path):
    settings.VAR_DIR = tmp_path
    call_command("seed_demo", stdout=io.StringIO())
    count = DatasetVersion.objects.count()
    call_command("seed_demo", stdout=io.StringIO())
    assert DatasetVersion.objects.count() == count >= 5
    assert (tmp_path / "admin-password.txt").stat().st_mode & 0o077 == 0


def test_seed_demo_again_does_no_harm_after_the_demo_data_changed(settings, tmp_path):
    """`make run` again, once people used the demo: owners, licences, status and consumers changed."""
    from django.contrib.auth.models import Group, User

    from governance.models import AuditEvent, Dataset
    from governance.services import (
        do_revoke_dataset_version,
        do_update_dataset,
        do_update_version_governance,
    )
    from serving.models import Consumer
    from serving.services import do_delete_consumer, do_update_consumer

    settings.VAR_DIR = tmp_path
    call_command("seed_demo", stdout=io.StringIO())
    call_command("seed_demo", stdout=io.StringIO())  # queues the scans that auto-scan (off in tests) did not
    admin = User.objects.get(username="admin")
    claims = Dataset.objects.get(name="claims-2024")
    do_update_dataset(
        actor=admin, dataset=claims, reason="claims moved to research",
        changes={"owner_group": Group.objects.get(name="research"), "steward": User.objects.get(username="dana")},
    )
    chats = DatasetVersion.objects.get(dataset__name="support-chats", number=1)
    do_update_version_governance(actor=admin, version=chats, changes={"licence": "CC-BY-4.0"}, reason="relicensed")
    do_revoke_dataset_version(actor=admin, version=DatasetVersion.objects.get(dataset__name="public-qa", number=1), reason="withdrawn")
    do_update_consumer(actor=admin, consumer=Consumer.objects.get(name="web-frontend"), changes={"region": "eu"}, reason="moved")
    do_delete_consumer(actor=admin, consumer=Consumer.objects.get(name="research-notebook"), reason="retired")
    versions, events = DatasetVersion.objects.count(), AuditEvent.objects.count()

    call_command("seed_demo", stdout=io.StringIO())

    new_events = list(AuditEvent.objects.filter(sequence__gt=events).values_list("action", "target_label", "reason"))
    assert (DatasetVersion.objects.count(), new_events) == (versions, [])
    claims.refresh_from_db()
    chats.refresh_from_db()
    assert (claims.owner_group.name, claims.steward.username, chats.licence) == ("research", "dana", "CC-BY-4.0")
    assert Consumer.objects.get(name="web-frontend").region == "eu"
    assert not Consumer.objects.filter(name="research-notebook").exists()  # deleted on purpose: not re-created
