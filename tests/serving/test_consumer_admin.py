"""Consumers in the admin console go through the services: validated and audited."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import Client

from governance.models import AuditEvent
from serving.models import Consumer

pytestmark = pytest.mark.django_db

FORM = {
    "name": "web-frontend", "description": "", "groups": '["support-team"]', "pii_clearances": "[]",
    "purposes": '["support"]', "region": "us", "commercial": "on", "reason": "OPS-12",
}


@pytest.fixture
def console(root: User) -> Client:
    client = Client()
    client.force_login(root)
    return client


def test_adding_a_consumer_in_the_console_is_audited(console: Client, alice: User) -> None:
    response = console.post("/admin/serving/consumer/add/", {**FORM, "owner": alice.pk})
    assert response.status_code == 302
    consumer = Consumer.objects.get(name="web-frontend")
    assert (consumer.owner, consumer.purposes, consumer.commercial) == (alice, ["support"], True)
    event = AuditEvent.objects.get(action="consumer.created")
    assert (event.actor_label, event.target_id, event.reason) == ("root", str(consumer.pk), "OPS-12")


def test_changing_a_consumer_in_the_console_bumps_its_facts_version_and_is_audited(console: Client) -> None:
    console.post("/admin/serving/consumer/add/", FORM)
    consumer = Consumer.objects.get(name="web-frontend")
    page = console.get(f"/admin/serving/consumer/{consumer.pk}/change/").content.decode()
    assert 'name="name"' not in page  # the name is read-only once created
    response = console.post(f"/admin/serving/consumer/{consumer.pk}/change/", {**FORM, "region": "eu"})
    assert response.status_code == 302
    consumer.refresh_from_db()
    assert (consumer.region, consumer.facts_version) == ("eu", 2)
    assert AuditEvent.objects.get(action="consumer.updated").changes == {"region": ["us", "eu"]}


def test_a_bad_value_is_refused_on_the_form(console: Client) -> None:
    response = console.post("/admin/serving/consumer/add/", {**FORM, "purposes": '["gossip"]'})
    assert response.status_code == 200 and "unknown purpose" in response.content.decode()
    assert not Consumer.objects.exists() and not AuditEvent.objects.exists()


def test_deleting_a_consumer_in_the_console_is_audited(console: Client) -> None:
    console.post("/admin/serving/consumer/add/", FORM)
    consumer = Consumer.objects.get(name="web-frontend")
    response = console.post(f"/admin/serving/consumer/{consumer.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302 and not Consumer.objects.exists()
    assert AuditEvent.objects.get(action="consumer.deleted").target_label == "web-frontend"


def test_the_console_refuses_a_change_without_a_reason(console: Client) -> None:
    response = console.post("/admin/serving/consumer/add/", {**FORM, "reason": ""})
    assert response.status_code == 200 and "This field is required" in response.content.decode()
    assert not Consumer.objects.exists() and not AuditEvent.objects.exists()


def test_the_console_refuses_a_clearance_the_scanner_does_not_know(console: Client) -> None:
    response = console.post("/admin/serving/consumer/add/", {**FORM, "pii_clearances": '["person"]'})
    page = response.content.decode()
    assert response.status_code == 200 and "unknown PII entity type" in page and "PERSON" in page
    assert not Consumer.objects.exists() and not AuditEvent.objects.exists()
