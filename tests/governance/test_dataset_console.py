"""Datasets are created and changed in the console through the audited services."""

from __future__ import annotations

import pytest

from governance.models import AuditEvent, Dataset

pytestmark = pytest.mark.django_db


@pytest.fixture
def console(client, root):
    client.force_login(root)
    return client


def form(dataset_name: str, owner_group, steward, **extra) -> dict:
    data = {
        "name": dataset_name,
        "title": "Support chats",
        "description": "",
        "owner_group": owner_group.pk,
        "steward": steward.pk,
        "domain": "support",
        "labels": "{}",
        "versions-TOTAL_FORMS": "0",
        "versions-INITIAL_FORMS": "0",
        "versions-MIN_NUM_FORMS": "0",
        "versions-MAX_NUM_FORMS": "0",
    }
    data.update(extra)
    return data


def test_adding_a_dataset_in_the_console_records_it_in_the_audit_log(console, claims_team, alice):
    response = console.post("/admin/governance/dataset/add/", form("support-chats", claims_team, alice))
    assert response.status_code == 302, response.content.decode()[:2000]
    dataset = Dataset.objects.get(name="support-chats")
    assert (dataset.owner_group, dataset.steward) == (claims_team, alice)
    assert AuditEvent.objects.filter(action="dataset.created", target_id=str(dataset.pk)).exists()


def test_changing_a_dataset_in_the_console_records_the_change(console, claims_dataset, claims_team, erin):
    url = f"/admin/governance/dataset/{claims_dataset.pk}/change/"
    response = console.post(url, form(claims_dataset.name, claims_team, erin, title="Claims, 2024", reason="alice moved on"))
    assert response.status_code == 302, response.content.decode()[:2000]
    claims_dataset.refresh_from_db()
    assert (claims_dataset.title, claims_dataset.steward) == ("Claims, 2024", erin)
    event = AuditEvent.objects.filter(action="dataset.ownership_changed").get()
    assert event.changes["steward"] == ["alice", "erin"] and event.reason == "alice moved on"


def test_an_ownership_change_without_a_reason_is_a_form_error_not_a_500(console, claims_dataset, claims_team, erin):
    url = f"/admin/governance/dataset/{claims_dataset.pk}/change/"
    response = console.post(url, form(claims_dataset.name, claims_team, erin))
    assert response.status_code == 200
    assert "a reason is required to change the steward" in response.content.decode()
    claims_dataset.refresh_from_db()
    assert claims_dataset.steward.username == "alice"


def test_moving_a_dataset_with_a_steward_from_the_old_team_is_a_form_error(console, claims_dataset, support_team):
    url = f"/admin/governance/dataset/{claims_dataset.pk}/change/"
    response = console.post(url, form(claims_dataset.name, support_team, claims_dataset.steward, reason="reorg"))
    assert response.status_code == 200
    assert "alice is not a member of support-team" in response.content.decode()
    claims_dataset.refresh_from_db()
    assert claims_dataset.owner_group.name == "claims-team"
