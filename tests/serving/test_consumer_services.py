"""Consumer workflows: who may change consumers, and changes that never lose each other."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from django.contrib.auth.models import AnonymousUser, User
from django.db import connection

from governance.models import AuditEvent
from pedigree.errors import Conflict, InvalidInput, PermissionDenied
from serving.models import Consumer
from serving.services import do_create_consumer, do_delete_consumer, do_update_consumer


@pytest.mark.django_db
@pytest.mark.parametrize("actor", ["anonymous", "alice"])
def test_only_admins_create_update_or_delete_consumers(actor: str, alice: User, claims_team: Any) -> None:
    who = AnonymousUser() if actor == "anonymous" else alice
    consumer = Consumer.objects.create(name="claims-fraud-us", owner=alice, region="us")
    with pytest.raises(PermissionDenied, match="only admins manage consumers"):
        do_create_consumer(actor=who, name="new-app", region="eu")
    with pytest.raises(PermissionDenied):
        do_update_consumer(actor=who, consumer=consumer, changes={"region": "eu"})
    with pytest.raises(PermissionDenied):
        do_delete_consumer(actor=who, consumer=consumer)
    assert list(Consumer.objects.values_list("name", "region")) == [("claims-fraud-us", "us")]
    assert not AuditEvent.objects.exists()


@pytest.mark.django_db
def test_the_model_invariants_are_checked_by_the_service(root: User) -> None:
    with pytest.raises(InvalidInput) as raised:
        do_create_consumer(actor=root, reason="OPS-1", name="app", region="eu", purposes=["support", "gossip"], groups=[""])
    assert raised.value.details["field"] == "groups"
    assert set(raised.value.details["fields"]) == {"groups", "purposes"}
    with pytest.raises(InvalidInput, match="region"):
        do_create_consumer(actor=root, reason="OPS-1", name="app", region="moon")
    assert not Consumer.objects.exists()


@pytest.mark.django_db
def test_a_duplicate_name_is_a_conflict(root: User) -> None:
    do_create_consumer(actor=root, reason="OPS-1", name="app", region="eu")
    with pytest.raises(Conflict):
        do_create_consumer(actor=root, reason="OPS-1", name="app", region="us")


@pytest.mark.django_db
def test_changes_apply_to_the_stored_consumer_not_a_stale_copy(root: User) -> None:
    do_create_consumer(actor=root, reason="OPS-1", name="app", region="eu", purposes=["support"])
    stale = Consumer.objects.get(name="app")
    do_update_consumer(actor=root, reason="OPS-1", consumer=stale, changes={"region": "us"})
    do_update_consumer(actor=root, reason="OPS-1", consumer=stale, changes={"purposes": ["research"]})  # stale still says eu, v1
    stored = Consumer.objects.get(name="app")
    assert (stored.region, stored.purposes, stored.facts_version) == ("us", ["research"], 3)


@pytest.mark.django_db(transaction=True)
def test_concurrent_changes_keep_every_change_and_every_facts_version(root: User) -> None:
    """Threads change different fields at once: no change is lost, each gets its own facts version."""
    if connection.vendor != "postgresql":
        # Django's SQLite test database is in memory with a shared cache, where a
        # second writer fails at once with "table is locked" instead of waiting (the
        # deployed SQLite file, WAL + BEGIN IMMEDIATE, queues writers).
        pytest.skip("concurrent writers need PostgreSQL (the SQLite test database is a shared-cache memory db)")
    do_create_consumer(actor=root, reason="OPS-1", name="app", region="eu")
    changes = [{"region": "us"}, {"purposes": ["support"]}, {"groups": ["support-team"]}, {"commercial": True}]
    start = threading.Barrier(len(changes))
    errors: list[BaseException] = []

    def change(fields: dict[str, Any]) -> None:
        try:
            consumer = Consumer.objects.get(name="app")
            start.wait()
            do_update_consumer(actor=root, reason="OPS-1", consumer=consumer, changes=fields)
        except BaseException as error:  # reported below
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=change, args=(fields,)) for fields in changes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    stored = Consumer.objects.get(name="app")
    assert (stored.region, stored.purposes, stored.groups, stored.commercial) == ("us", ["support"], ["support-team"], True)
    assert stored.facts_version == 1 + len(changes)
    versions = sorted(event.sequence for event in AuditEvent.objects.filter(action="consumer.updated"))
    assert len(versions) == len(changes)


@pytest.mark.django_db
def test_every_consumer_change_needs_a_reason(root: User) -> None:
    with pytest.raises(InvalidInput, match="a reason is required to create consumer app") as raised:
        do_create_consumer(actor=root, name="app", region="eu")
    assert raised.value.details["field"] == "reason"
    consumer = do_create_consumer(actor=root, name="app", region="eu", reason="OPS-1")
    with pytest.raises(InvalidInput, match="a reason is required to change"):
        do_update_consumer(actor=root, consumer=consumer, changes={"region": "us"}, reason="  ")
    with pytest.raises(InvalidInput, match="a reason is required to delete"):
        do_delete_consumer(actor=root, consumer=consumer)
    stored = Consumer.objects.get(name="app")
    assert (stored.region, stored.facts_version) == ("eu", 1)
    assert list(AuditEvent.objects.values_list("action", "reason")) == [("consumer.created", "OPS-1")]


@pytest.mark.django_db
@pytest.mark.parametrize("clearance", ["BOGUS", "person", "EMAIL", "US_SSN "])
def test_a_clearance_the_scanner_does_not_know_is_refused(root: User, clearance: str) -> None:
    with pytest.raises(InvalidInput, match="unknown PII entity type") as raised:
        do_create_consumer(actor=root, name="app", region="eu", pii_clearances=[clearance], reason="OPS-1")
    assert raised.value.details["field"] == "pii_clearances"
    consumer = do_create_consumer(actor=root, name="app", region="eu", pii_clearances=["PERSON"], reason="OPS-1")
    with pytest.raises(InvalidInput, match="unknown PII entity type"):
        do_update_consumer(actor=root, consumer=consumer, changes={"pii_clearances": ["PERSON", clearance]}, reason="x")
    assert Consumer.objects.get(name="app").pii_clearances == ["PERSON"]


@pytest.mark.django_db
def test_clearances_may_name_the_custom_recognizers_types(root: User) -> None:
    consumer = do_create_consumer(
        actor=root, name="app", region="eu", pii_clearances=["EMPLOYEE_ID", "UK_NINO", "US_SSN"], reason="OPS-1"
    )
    assert consumer.pii_clearances == ["EMPLOYEE_ID", "UK_NINO", "US_SSN"]
