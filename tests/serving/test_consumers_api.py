"""The consumers API (/api/v1/consumers/) against the real database.

Personas: root is an admin; alice owns claims-fraud-us; mallory owns
helpdesk-eu and is an outsider to alice's consumer.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import Group, User
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from governance.lineage import graph
from governance.models import AuditEvent
from governance.models.audit import verify_chain
from policies.decision_log import decision_log
from policies.models import PolicyDecision
from serving.models import Consumer
from tests.governance.lineage_factories import deployed, endpoint_node, model_node, trained_on
from tests.governance.pii_support import jsonl_bytes, scan_now

pytestmark = pytest.mark.django_db

URL = "/api/v1/consumers/"
Clients = Callable[[User | None], APIClient]

NEW_CONSUMER = {
    "name": "web-frontend",
    "description": "Public website chat widget",
    "groups": ["support-team"],
    "pii_clearances": [],
    "purposes": ["support"],
    "region": "us",
    "commercial": True,
    "reason": "OPS-12",
}


def _audit(action: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action=action).order_by("sequence"))


def _error(response: Any) -> dict[str, Any]:
    body = response.json()
    assert set(body) == {"error"}, body
    return dict(body["error"])


# --- Reading -------------------------------------------------------------------------------


def test_an_admin_lists_every_consumer(api_client: Clients, root: User, claims_fraud: Consumer, helpdesk: Consumer) -> None:
    response = api_client(root).get(URL)
    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 2
    first = body["results"][0]
    assert first["name"] == "claims-fraud-us" and first["owner"] == "alice" and first["region"] == "us"
    assert first["url"] == "http://testserver/api/v1/consumers/claims-fraud-us/"
    assert first["pii_clearances"] == ["PERSON", "US_SSN"] and first["facts_version"] == 1


def test_an_owner_lists_and_reads_only_the_consumers_they_own(
    api_client: Clients, alice: User, claims_fraud: Consumer, helpdesk: Consumer
) -> None:
    client = api_client(alice)
    assert [item["name"] for item in client.get(URL).json()["results"]] == ["claims-fraud-us"]
    assert client.get(URL + "claims-fraud-us/").json()["purposes"] == ["fraud_prevention"]
    assert client.get(URL + "helpdesk-eu/").status_code == 404  # someone else's: not even its existence


def test_a_signed_in_user_who_owns_nothing_sees_nothing(api_client: Clients, erin: User, claims_fraud: Consumer) -> None:
    assert api_client(erin).get(URL).json()["count"] == 0
    assert api_client(erin).get(URL + "claims-fraud-us/").status_code == 404


def test_an_anonymous_caller_is_asked_to_sign_in(api_client: Clients, claims_fraud: Consumer) -> None:
    response = api_client(None).get(URL)
    assert response.status_code == 401
    assert _error(response)["code"] == "not_authenticated"


def test_the_list_filters_by_region_owner_commercial_and_search(
    api_client: Clients, root: User, claims_fraud: Consumer, helpdesk: Consumer
) -> None:
    client = api_client(root)

    def names(query: str) -> list[str]:
        return [item["name"] for item in client.get(URL + query).json()["results"]]

    assert names("?region=eu") == ["helpdesk-eu"]
    assert names("?owner=alice") == ["claims-fraud-us"]
    assert names("?commercial=true") == ["helpdesk-eu"]
    assert names("?search=fraud") == ["claims-fraud-us"]


def test_the_list_costs_the_same_queries_for_more_consumers(api_client: Clients, root: User, alice: User) -> None:
    client = api_client(root)

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert client.get(URL).status_code == 200
        return len(captured.captured_queries)

    for number in range(2):
        Consumer.objects.create(name=f"app-{number}", owner=alice, region="eu")
    few = queries()
    for number in range(2, 10):
        Consumer.objects.create(name=f"app-{number}", owner=alice, region="eu")
    assert queries() == few


# --- Creating ------------------------------------------------------------------------------


def test_an_admin_creates_a_consumer_and_the_audit_log_records_it(api_client: Clients, root: User, alice: User) -> None:
    response = api_client(root).post(URL, {**NEW_CONSUMER, "owner": "alice", "reason": "ticket OPS-12"}, format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert "reason" not in body
    assert body["name"] == "web-frontend" and body["owner"] == "alice" and body["facts_version"] == 1
    consumer = Consumer.objects.get(name="web-frontend")
    assert (consumer.purposes, consumer.region, consumer.commercial) == (["support"], "us", True)
    [event] = _audit("consumer.created")
    assert (event.actor_label, event.target_type, event.target_id) == ("root", "serving.consumer", str(consumer.pk))
    assert event.reason == "ticket OPS-12"
    assert event.changes == {
        "owner": "alice", "groups": ["support-team"], "pii_clearances": [], "purposes": ["support"],
        "region": "us", "commercial": True,
    }


def test_the_owner_defaults_to_the_admin_who_creates_it(api_client: Clients, root: User) -> None:
    response = api_client(root).post(URL, {"name": "batch-scorer", "region": "eu", "reason": "OPS-7"}, format="json")
    assert response.status_code == 201
    assert response.json()["owner"] == "root"
    assert response.json()["groups"] == [] and response.json()["commercial"] is False


def test_a_console_login_alone_is_not_an_admin_here_but_the_admins_group_is(api_client: Clients) -> None:
    staff = User.objects.create_user("sam", password="pw-sam", is_staff=True)
    assert api_client(staff).post(URL, NEW_CONSUMER, format="json").status_code == 403
    staff.groups.add(Group.objects.get_or_create(name="admins")[0])
    assert api_client(staff).post(URL, NEW_CONSUMER, format="json").status_code == 201


@pytest.mark.parametrize("body", [NEW_CONSUMER, {"name": "x"}], ids=["valid", "invalid"])
def test_a_non_admin_may_not_create_a_consumer(api_client: Clients, alice: User, body: dict[str, Any]) -> None:
    response = api_client(alice).post(URL, body, format="json")
    assert response.status_code == 403  # refused before the body is read, valid or not
    assert "only admins manage consumers" in _error(response)["message"]
    assert not Consumer.objects.exists() and not _audit("consumer.created")


def test_a_second_consumer_with_the_same_name_is_a_conflict(api_client: Clients, root: User, claims_fraud: Consumer) -> None:
    response = api_client(root).post(URL, {**NEW_CONSUMER, "name": "claims-fraud-us"}, format="json")
    assert response.status_code == 409
    error = _error(response)
    assert error["code"] == "conflict" and error["field"] == "name" and "claims-fraud-us already exists" in error["message"]
    assert Consumer.objects.get(name="claims-fraud-us").region == "us"


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        ({"purposes": ["support", "spying"]}, "purposes", 'unknown purpose "spying": use support, analytics'),
        ({"purposes": "support"}, "purposes", "Expected a list of items"),
        ({"region": "mars"}, "region", 'unknown region "mars": use eu, us, uk, ca, apac, global'),
        ({"region": None}, "region", "may not be null"),
        ({"groups": ["support-team", ""]}, "groups", "may not be blank"),
        ({"groups": ["support-team", 7]}, "groups", "Not a valid string"),
        ({"pii_clearances": [" "]}, "pii_clearances", "may not be blank"),
        ({"pii_clearances": {"PERSON": True}}, "pii_clearances", "Expected a list of items"),
        ({"name": "Web Frontend!"}, "name", "letters, numbers, underscores or hyphens"),
        ({"owner": "nobody"}, "owner", "does not exist"),
        ({"commercial": "maybe"}, "commercial", "Must be a valid boolean"),
        ({"facts_version": 9}, "facts_version", "unknown or read-only field"),
        ({"colour": "blue"}, "colour", "unknown or read-only field"),
    ],
)
def test_bad_input_is_refused_naming_the_field(
    api_client: Clients, root: User, change: dict[str, Any], field: str, words: str
) -> None:
    response = api_client(root).post(URL, {**NEW_CONSUMER, **change}, format="json")
    assert response.status_code == 400, response.json()
    error = _error(response)
    assert error["code"] == "invalid" and set(error["fields"]) == {field}
    assert error["message"].startswith(f"{field}: ") and words in error["message"]
    assert not Consumer.objects.exists() and not _audit("consumer.created")


def test_a_missing_region_is_refused(api_client: Clients, root: User) -> None:
    response = api_client(root).post(URL, {"name": "no-region"}, format="json")
    assert response.status_code == 400 and _error(response)["fields"] == {"region": ["This field is required."]}


# --- Changing ------------------------------------------------------------------------------


def test_a_patch_changes_the_facts_bumps_the_version_and_is_audited(
    api_client: Clients, root: User, claims_fraud: Consumer
) -> None:
    response = api_client(root).patch(
        URL + "claims-fraud-us/",
        {"pii_clearances": ["PERSON"], "region": "ca", "reason": "SSNs are no longer needed"},
        format="json",
    )
    assert response.status_code == 200, response.json()
    assert response.json()["facts_version"] == 2 and response.json()["region"] == "ca"
    claims_fraud.refresh_from_db()
    assert (claims_fraud.pii_clearances, claims_fraud.region, claims_fraud.facts_version) == (["PERSON"], "ca", 2)
    assert claims_fraud.purposes == ["fraud_prevention"]  # untouched
    [event] = _audit("consumer.updated")
    assert event.reason == "SSNs are no longer needed" and event.actor_label == "root"
    assert event.changes == {"pii_clearances": [["PERSON", "US_SSN"], ["PERSON"]], "region": ["us", "ca"]}


def test_every_change_bumps_the_facts_version(api_client: Clients, root: User, claims_fraud: Consumer) -> None:
    client = api_client(root)
    changes: list[dict[str, Any]] = [
        {"description": "new words"}, {"commercial": True}, {"owner": "root"}, {"groups": ["claims-team", "fraud"]}
    ]
    for expected, change in enumerate(changes, start=2):
        body = {**change, "reason": "OPS-7"}
        assert client.patch(URL + "claims-fraud-us/", body, format="json").json()["facts_version"] == expected
    assert len(_audit("consumer.updated")) == 4


def test_a_patch_that_changes_nothing_writes_nothing(api_client: Clients, root: User, claims_fraud: Consumer) -> None:
    response = api_client(root).patch(
        URL + "claims-fraud-us/", {"region": "us", "purposes": ["fraud_prevention"], "reason": "OPS-7"}, format="json"
    )
    assert response.status_code == 200 and response.json()["facts_version"] == 1
    assert not _audit("consumer.updated")


def test_the_name_never_changes(api_client: Clients, root: User, claims_fraud: Consumer) -> None:
    response = api_client(root).patch(URL + "claims-fraud-us/", {"name": "fraud-us"}, format="json")
    assert response.status_code == 400 and set(_error(response)["fields"]) == {"name"}
    assert Consumer.objects.filter(name="claims-fraud-us").exists()


def test_a_bad_patch_changes_nothing(api_client: Clients, root: User, claims_fraud: Consumer) -> None:
    response = api_client(root).patch(
        URL + "claims-fraud-us/", {"region": "eu", "purposes": ["fraud_prevention", "gossip"]}, format="json"
    )
    assert response.status_code == 400 and set(_error(response)["fields"]) == {"purposes"}
    claims_fraud.refresh_from_db()
    assert (claims_fraud.region, claims_fraud.facts_version) == ("us", 1) and not _audit("consumer.updated")


def test_put_is_not_offered(api_client: Clients, root: User, claims_fraud: Consumer) -> None:
    assert api_client(root).put(URL + "claims-fraud-us/", NEW_CONSUMER, format="json").status_code == 405


def test_the_owner_may_read_but_not_change_their_consumer(api_client: Clients, alice: User, claims_fraud: Consumer) -> None:
    client = api_client(alice)
    response = client.patch(URL + "claims-fraud-us/", {"pii_clearances": ["PERSON", "US_SSN", "CREDIT_CARD"]}, format="json")
    assert response.status_code == 403 and "only admins manage consumers" in _error(response)["message"]
    claims_fraud.refresh_from_db()
    assert claims_fraud.pii_clearances == ["PERSON", "US_SSN"] and claims_fraud.facts_version == 1


def test_an_unknown_consumer_is_not_found(api_client: Clients, root: User) -> None:
    assert api_client(root).patch(URL + "nobody/", {"region": "eu"}, format="json").status_code == 404
    assert api_client(root).delete(URL + "nobody/").status_code == 404


# --- Deleting ------------------------------------------------------------------------------


def test_an_admin_deletes_a_consumer_and_the_audit_log_keeps_what_it_was(
    api_client: Clients, root: User, claims_fraud: Consumer
) -> None:
    response = api_client(root).delete(URL + "claims-fraud-us/?reason=application retired")
    assert response.status_code == 204
    assert not Consumer.objects.filter(name="claims-fraud-us").exists()
    [event] = _audit("consumer.deleted")
    assert (event.target_label, event.reason) == ("claims-fraud-us", "application retired")
    assert event.changes["pii_clearances"] == ["PERSON", "US_SSN"] and event.changes["owner"] == "alice"


def test_the_owner_may_not_delete_their_consumer(api_client: Clients, alice: User, claims_fraud: Consumer) -> None:
    assert api_client(alice).delete(URL + "claims-fraud-us/").status_code == 403
    assert Consumer.objects.filter(name="claims-fraud-us").exists() and not _audit("consumer.deleted")


def test_the_audit_chain_verifies_after_a_consumer_lifecycle(api_client: Clients, root: User) -> None:
    client = api_client(root)
    client.post(URL, NEW_CONSUMER, format="json")
    client.patch(URL + "web-frontend/", {"region": "eu", "reason": "moved"}, format="json")
    client.delete(URL + "web-frontend/?reason=retired")
    report = verify_chain()
    assert report.ok and report.events_checked == 3


# --- What a consumer may call --------------------------------------------------------------


@pytest.fixture
def eu_support_endpoint(claims_dataset: Any, make_version: Any) -> Any:
    """An endpoint serving a model trained on data allowed for support, in the EU only."""
    version = make_version(
        claims_dataset, jsonl_bytes("The router keeps disconnecting.", "Reset the camera twice."),
        allowed_purposes=["support", "research"], residency_regions=["eu"],
    )
    scan_now(version)  # clean
    model = trained_on(model_node("helpdesk-bot v1"), graph.node_for_dataset_version(version))
    return deployed(endpoint_node("helpdesk-bot"), model)


def test_endpoints_lists_what_the_policies_let_the_consumer_call(
    api_client: Clients, root: User, helpdesk: Consumer, claims_fraud: Consumer, eu_support_endpoint: Any
) -> None:
    client = api_client(root)
    body = client.get(URL + "helpdesk-eu/endpoints/").json()
    assert body["consumer"] == "helpdesk-eu" and body["purpose"] is None
    assert eu_support_endpoint.reference in body["allowed"]
    [decision] = [item for item in body["decisions"] if item["endpoint"] == eu_support_endpoint.reference]
    assert decision["allowed"] is True and decision["label"] == "endpoint helpdesk-bot" and decision["outcome"] == "allow"

    denied = client.get(URL + "claims-fraud-us/endpoints/").json()
    assert eu_support_endpoint.reference not in denied["allowed"]
    [decision] = [item for item in denied["decisions"] if item["endpoint"] == eu_support_endpoint.reference]
    assert decision["allowed"] is False and {"purpose-limitation", "residency"} <= set(decision["policies"])
    assert "eu" in decision["reason"] and "claims-fraud-us" in decision["reason"]


def test_endpoints_leaves_out_the_policies_what_ifs_unless_asked(
    api_client: Clients, root: User, helpdesk: Consumer, eu_support_endpoint: Any
) -> None:
    client = api_client(root)
    listed = client.get(URL + "helpdesk-eu/endpoints/").json()
    assert [item["endpoint"] for item in listed["decisions"]] == [eu_support_endpoint.reference]
    assert listed["decisions"][0]["hypothetical"] is False
    everything = client.get(URL + "helpdesk-eu/endpoints/?hypothetical=true").json()
    [what_if] = [item for item in everything["decisions"] if item["hypothetical"]]
    assert (what_if["endpoint"], what_if["label"]) == ("claims-2024/v1", "a model trained on claims-2024 v1")
    assert what_if["allowed"] is True and "claims-2024/v1" in everything["allowed"]
    response = client.get(URL + "helpdesk-eu/endpoints/?hypothetical=maybe")
    assert response.status_code == 400 and _error(response)["field"] == "hypothetical"


def test_endpoints_follows_the_declared_purpose(
    api_client: Clients, root: User, helpdesk: Consumer, eu_support_endpoint: Any
) -> None:
    client = api_client(root)
    assert eu_support_endpoint.reference in client.get(URL + "helpdesk-eu/endpoints/?purpose=support").json()["allowed"]
    body = client.get(URL + "helpdesk-eu/endpoints/?purpose=research").json()  # the data allows it; the consumer lacks it
    assert body["purpose"] == "research" and eu_support_endpoint.reference not in body["allowed"]
    response = client.get(URL + "helpdesk-eu/endpoints/?purpose=gossip")
    assert response.status_code == 400 and _error(response)["field"] == "purpose"


def test_a_change_to_the_consumer_changes_what_it_may_call(
    api_client: Clients, root: User, claims_fraud: Consumer, eu_support_endpoint: Any
) -> None:
    client = api_client(root)
    assert eu_support_endpoint.reference not in client.get(URL + "claims-fraud-us/endpoints/").json()["allowed"]
    client.patch(URL + "claims-fraud-us/", {"region": "eu", "purposes": ["support"], "reason": "OPS-7"}, format="json")
    assert eu_support_endpoint.reference in client.get(URL + "claims-fraud-us/endpoints/").json()["allowed"]


def test_the_owner_may_ask_what_their_consumer_may_call_and_others_may_not(
    api_client: Clients, alice: User, mallory: User, claims_fraud: Consumer, eu_support_endpoint: Any
) -> None:
    assert api_client(alice).get(URL + "claims-fraud-us/endpoints/").status_code == 200
    assert api_client(mallory).get(URL + "claims-fraud-us/endpoints/").status_code == 404


def test_asking_what_a_consumer_may_call_logs_no_decision(
    api_client: Clients, root: User, helpdesk: Consumer, eu_support_endpoint: Any
) -> None:
    api_client(root).get(URL + "helpdesk-eu/endpoints/")
    decision_log.flush()
    assert not PolicyDecision.objects.exists()


# --- The schema ----------------------------------------------------------------------------


def test_the_consumers_api_is_in_the_openapi_schema(api_client: Clients, root: User) -> None:
    response = api_client(root).get("/api/schema/", {"format": "json"})
    assert response.status_code == 200
    paths = response.json()["paths"]
    assert set(paths["/api/v1/consumers/"]) == {"get", "post"}
    assert set(paths["/api/v1/consumers/{name}/"]) == {"get", "patch", "delete"}
    endpoints = paths["/api/v1/consumers/{name}/endpoints/"]["get"]
    assert {parameter["name"] for parameter in endpoints["parameters"]} == {"name", "purpose", "hypothetical"}
    schema = endpoints["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    assert schema.endswith("/ConsumerEndpoints")


def test_a_change_without_a_reason_is_refused_naming_the_reason(api_client: Clients, root: User, claims_fraud: Consumer) -> None:
    client = api_client(root)
    body = {key: value for key, value in NEW_CONSUMER.items() if key != "reason"}
    created = client.post(URL, body, format="json")
    patched = client.patch(URL + "claims-fraud-us/", {"region": "eu"}, format="json")
    deleted = client.delete(URL + "claims-fraud-us/")
    for response in (created, patched, deleted):
        assert response.status_code == 400 and _error(response)["field"] == "reason", response.content
        assert "a reason is required" in _error(response)["message"]
    claims_fraud.refresh_from_db()
    assert (claims_fraud.region, claims_fraud.facts_version) == ("us", 1)
    assert not Consumer.objects.filter(name="web-frontend").exists() and not _audit("consumer.updated")


@pytest.mark.parametrize("clearance", ["BOGUS", "person", "EMAIL"])
def test_an_unknown_clearance_is_a_400_naming_the_field(
    api_client: Clients, root: User, claims_fraud: Consumer, clearance: str
) -> None:
    client = api_client(root)
    created = client.post(URL, {**NEW_CONSUMER, "pii_clearances": [clearance]}, format="json")
    patched = client.patch(URL + "claims-fraud-us/", {"pii_clearances": [clearance], "reason": "x"}, format="json")
    for response in (created, patched):
        assert response.status_code == 400 and _error(response)["field"] == "pii_clearances", response.content
        assert clearance in _error(response)["message"]
    claims_fraud.refresh_from_db()
    assert claims_fraud.pii_clearances == ["PERSON", "US_SSN"] and claims_fraud.facts_version == 1
