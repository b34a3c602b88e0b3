"""Immutable records cannot be added, edited or deleted from the console."""

from __future__ import annotations

import pytest

from governance.models import AuditEvent

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client_as_root(client, root):
    client.force_login(root)
    return client


def test_a_dataset_version_cannot_be_edited_or_deleted_in_the_console(admin_client_as_root, claims_dataset, make_version):
    version = make_version(claims_dataset, licence="MIT")
    url = f"/admin/governance/datasetversion/{version.pk}/"
    assert admin_client_as_root.get(url + "change/").status_code == 200  # viewable
    response = admin_client_as_root.post(url + "change/", {"licence": "CC0-1.0", "record_count": 1})
    assert response.status_code == 403
    assert admin_client_as_root.post(url + "delete/", {"post": "yes"}).status_code == 403
    version.refresh_from_db()
    assert (version.licence, version.record_count) == ("MIT", 3)


def test_audit_events_cannot_be_added_changed_or_deleted(admin_client_as_root, claims_dataset):
    event = AuditEvent.objects.get()
    assert admin_client_as_root.get("/admin/governance/auditevent/add/").status_code == 403
    assert admin_client_as_root.post(f"/admin/governance/auditevent/{event.pk}/change/", {"reason": "x"}).status_code == 403
    assert admin_client_as_root.post(f"/admin/governance/auditevent/{event.pk}/delete/", {"post": "yes"}).status_code == 403
    assert AuditEvent.objects.get().reason == event.reason
