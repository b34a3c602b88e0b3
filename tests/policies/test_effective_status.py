"""One effective status, read the same way by every path (issue 9, "Quarantine and expiry
are the same everywhere").

The scenario the issue found: claims-2024 v2 is a redacted copy of v1; a model
is trained on v2 and served by an endpoint. When v1 is revoked, v2 is
quarantined through its lineage; the API, the console, ``decide``, the
simulations, the consumers' ``endpoints/`` and the download must all say so.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import pytest
import time_machine
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from governance.lineage import graph
from governance.lineage.services import (
    do_grant_quarantine_exception,
    do_record_redaction,
    sync_stale_dataset_versions,
)
from governance.lineage.status import expiry_instant
from governance.models import LineageNode
from governance.services import (
    do_open_dataset_version,
    do_revoke_dataset_version,
    do_update_version_governance,
)
from pedigree.errors import Conflict
from policies import decisions
from policies.facts import find_resource, hypothetical_endpoint
from serving.models import Consumer
from tests.governance.lineage_factories import deployed, endpoint_node, model_node, trained_on
from tests.governance.pii_support import scan_and_review

pytestmark = pytest.mark.django_db

API = "/api/v1/"


@pytest.fixture
def helpdesk(db: Any) -> Consumer:
    """A consumer every rule but quarantine lets call a model trained on the claims data."""
    return Consumer.objects.create(name="helpdesk", purposes=["support"], region="us")


@pytest.fixture
def redacted(claims_dataset: Any, make_version: Any, alice: Any) -> dict[str, Any]:
    """claims-2024 v1, its redacted copy v2, a model trained on v2 and an endpoint serving it."""
    original = make_version(claims_dataset, allowed_purposes=["support"], residency_regions=["us"])
    copy = make_version(claims_dataset, allowed_purposes=["support"], residency_regions=["us"])
    for version in (original, copy):  # scanned, nothing personal kept: only the status decides
        scan_and_review(version, actor=alice, keep=set())
    copy_node = do_record_redaction(actor=alice, source=original, redacted=copy, removed_pii_types=["*"])
    model = trained_on(model_node("claims-bot v1"), copy_node)
    endpoint = deployed(endpoint_node("claims-bot"), model)
    return {"original": original, "copy": copy, "copy_node": copy_node, "model": model, "endpoint": endpoint}


def _revoke_original(redacted: dict[str, Any], alice: Any) -> None:
    do_revoke_dataset_version(actor=alice, version=redacted["original"], reason="consent withdrawn")
    redacted["copy"].refresh_from_db()


# --- Every path reads the same status ---------------------------------------------------


def test_a_redacted_copy_of_a_revoked_version_shows_quarantined_in_the_api(
    api_client: Any, alice: Any, redacted: dict[str, Any]
) -> None:
    client = api_client(alice)
    assert client.get(API + "datasets/claims-2024/versions/2/").json()["status"] == "active"
    _revoke_original(redacted, alice)
    assert client.get(API + "datasets/claims-2024/versions/2/").json()["status"] == "quarantined"
    listed = {item["number"]: item["status"] for item in client.get(API + "datasets/claims-2024/versions/").json()["results"]}
    assert listed == {1: "revoked", 2: "quarantined"}


def test_the_version_list_reads_the_effective_status_in_the_same_query(
    api_client: Any, alice: Any, redacted: dict[str, Any], django_assert_max_num_queries: Any
) -> None:
    _revoke_original(redacted, alice)
    client = api_client(alice)
    # token, dataset, count, page (with the lineage status), the user's roles, the datasets whose details they see
    with django_assert_max_num_queries(6):
        client.get(API + "datasets/claims-2024/versions/")


def test_a_redacted_copy_of_a_revoked_version_shows_quarantined_in_the_console(
    root: Any, alice: Any, redacted: dict[str, Any]
) -> None:
    _revoke_original(redacted, alice)
    client = Client()
    client.force_login(root)
    page = client.get(reverse("admin:governance_datasetversion_change", args=[redacted["copy"].pk])).content.decode()
    assert "quarantined (its own status: active)" in page
    listing = client.get(reverse("admin:governance_datasetversion_changelist")).content.decode()
    assert "quarantined (its own status: active)" in listing


def test_training_on_a_redacted_copy_of_a_revoked_version_is_denied(alice: Any, redacted: dict[str, Any]) -> None:
    _revoke_original(redacted, alice)
    decision = decisions.decide(alice, "dataset.train", redacted["copy"])
    assert not decision.allowed and decision.policies == ("quarantine",)


def test_decide_denies_invoking_a_model_trained_on_a_redacted_copy_of_revoked_data(
    api_client: Any, root: Any, alice: Any, helpdesk: Consumer, redacted: dict[str, Any]
) -> None:
    client = api_client(root)

    def invoke(endpoint_id: str) -> dict[str, Any]:
        body = {"principal": {"consumer": "helpdesk"}, "action": "endpoint.invoke", "resource": {"kind": "Endpoint", "id": endpoint_id}}
        return client.post(API + "policies/decide/", body, format="json").json()  # type: ignore[no-any-return]

    hypothetical, real = "claims-2024/v2", redacted["endpoint"].reference
    assert invoke(hypothetical)["allowed"] and invoke(real)["allowed"]
    _revoke_original(redacted, alice)
    for endpoint_id in (hypothetical, real):
        answer = invoke(endpoint_id)
        assert (answer["allowed"], answer["policies"]) == (False, ["quarantine"]), endpoint_id
    assert "claims-2024 v1" in invoke(hypothetical)["reason"]  # names the revoked original


def test_simulation_denies_invoking_a_model_trained_on_a_redacted_copy_of_revoked_data(
    api_client: Any, root: Any, alice: Any, helpdesk: Consumer, redacted: dict[str, Any]
) -> None:
    client = api_client(root)
    _revoke_original(redacted, alice)
    invokers = client.get(API + "policies/simulate/invokers/", {"endpoint": "claims-2024/v2"}).json()
    assert invokers["allowed"] == []
    callable_now = client.get(API + "policies/simulate/endpoints/", {"consumer": "helpdesk"}).json()
    assert callable_now["allowed"] == []


def test_the_consumers_endpoints_answer_from_the_same_facts_as_decide(
    api_client: Any, root: Any, alice: Any, helpdesk: Consumer, redacted: dict[str, Any]
) -> None:
    client = api_client(root)
    before = client.get(API + "consumers/helpdesk/endpoints/?hypothetical=true").json()
    assert sorted(before["allowed"]) == sorted(["claims-2024/v1", "claims-2024/v2", redacted["endpoint"].reference])
    _revoke_original(redacted, alice)
    after = client.get(API + "consumers/helpdesk/endpoints/?hypothetical=true").json()
    assert after["allowed"] == []
    decided = decisions.decide(helpdesk, "endpoint.invoke", hypothetical_endpoint(redacted["copy"]))
    listed = {item["endpoint"]: item for item in after["decisions"]}["claims-2024/v2"]
    assert (listed["outcome"], listed["policies"]) == (decided.outcome, list(decided.policies))


def test_a_hypothetical_endpoint_reads_the_lineage_facts_not_the_versions_own(alice: Any, redacted: dict[str, Any]) -> None:
    _revoke_original(redacted, alice)
    facts = hypothetical_endpoint(redacted["copy"])
    assert redacted["copy"].status == "active"  # its own field says active ...
    assert facts.quarantined and facts.status == "quarantined"  # ... its lineage does not


def test_downloading_a_redacted_copy_of_a_revoked_version_names_the_quarantine(alice: Any, redacted: dict[str, Any]) -> None:
    _revoke_original(redacted, alice)
    with pytest.raises(Conflict) as caught:
        do_open_dataset_version(actor=alice, version=redacted["copy"])
    assert caught.value.message.startswith("claims-2024 v2 is quarantined and cannot be downloaded")


# --- Time-bound facts end a cached decision at their instant -----------------------------


def test_a_cached_allow_ends_when_a_quarantine_exception_lapses(
    root: Any, alice: Any, helpdesk: Consumer, redacted: dict[str, Any]
) -> None:
    _revoke_original(redacted, alice)
    original_node = graph.node_for_dataset_version(redacted["original"])
    lapses_at = timezone.now() + dt.timedelta(seconds=1.5)
    do_grant_quarantine_exception(
        actor=root, node=redacted["endpoint"], cause=original_node, reason="legal hold review", expires_at=lapses_at
    )
    held = find_resource("Endpoint", redacted["endpoint"].reference)  # a caller that holds the facts
    first = decisions.decide(helpdesk, "endpoint.invoke", held)
    assert first.allowed
    assert decisions.decide(helpdesk, "endpoint.invoke", held) is first  # from the cache
    time.sleep(max(0.0, (lapses_at - timezone.now()).total_seconds()) + 0.05)
    # The hourly job has not run: the stored status is still active.
    redacted["endpoint"].refresh_from_db()
    assert redacted["endpoint"].effective_status == "active"
    stale = decisions.decide(helpdesk, "endpoint.invoke", held)
    assert not stale.allowed and "read them again" in stale.reason
    fresh = decisions.decide(helpdesk, "endpoint.invoke", find_resource("Endpoint", redacted["endpoint"].reference))
    assert (fresh.allowed, fresh.policies) == (False, ("quarantine",))


def test_a_cached_allow_ends_at_the_instant_the_data_expires(
    alice: Any, helpdesk: Consumer, redacted: dict[str, Any]
) -> None:
    expires_on = timezone.localdate() + dt.timedelta(days=3)
    do_update_version_governance(
        actor=alice, version=redacted["original"], changes={"expires_at": expires_on}, reason="contract ends"
    )
    instant = expiry_instant(expires_on)
    endpoint_id = redacted["endpoint"].reference
    with time_machine.travel(instant - dt.timedelta(seconds=1), tick=False):
        held = find_resource("Endpoint", endpoint_id)
        first = decisions.decide(helpdesk, "endpoint.invoke", held)
        assert first.allowed and decisions.decide(helpdesk, "endpoint.invoke", held) is first
        assert decisions.decide(helpdesk, "endpoint.invoke", hypothetical_endpoint(redacted["copy"])).allowed
    with time_machine.travel(instant, tick=False):  # the expiry job has not run
        assert decisions.decide(helpdesk, "endpoint.invoke", held).allowed is False
        for facts in (find_resource("Endpoint", endpoint_id), hypothetical_endpoint(redacted["copy"])):
            decision = decisions.decide(helpdesk, "endpoint.invoke", facts)
            assert (decision.allowed, decision.policies) == (False, ("quarantine",)), facts.id


def test_a_version_reads_expired_from_the_instant_its_expiry_date_passes(
    api_client: Any, alice: Any, redacted: dict[str, Any]
) -> None:
    expires_on = timezone.localdate() + dt.timedelta(days=3)
    do_update_version_governance(
        actor=alice, version=redacted["original"], changes={"expires_at": expires_on}, reason="contract ends"
    )
    client = api_client(alice)
    url = API + "datasets/claims-2024/versions/{}/"
    with time_machine.travel(expiry_instant(expires_on) - dt.timedelta(seconds=1), tick=False):
        assert [client.get(url.format(n)).json()["status"] for n in (1, 2)] == ["active", "active"]
        assert decisions.decide(alice, "dataset.read", redacted["copy"]).allowed
    with time_machine.travel(expiry_instant(expires_on), tick=False):
        assert [client.get(url.format(n)).json()["status"] for n in (1, 2)] == ["expired", "quarantined"]
        decision = decisions.decide(alice, "dataset.read", redacted["copy"])
        assert (decision.allowed, decision.policies) == (False, ("quarantine",))


def test_the_hourly_pass_brings_an_expiry_recorded_before_it_was_a_fact_to_the_models(
    alice: Any, redacted: dict[str, Any]
) -> None:
    expires_on = timezone.localdate() + dt.timedelta(days=3)
    do_update_version_governance(
        actor=alice, version=redacted["original"], changes={"expires_at": expires_on}, reason="contract ends"
    )
    node = graph.node_for_dataset_version(redacted["original"])
    own = {key: value for key, value in node.own_facts.items() if key != "expires_at"}
    LineageNode.objects.filter(pk=node.pk).update(own_facts=own)  # as a node synced by the previous release
    assert sync_stale_dataset_versions() == [redacted["original"].pk]
    endpoint = find_resource("Endpoint", redacted["endpoint"].reference)
    assert endpoint.valid_until == expiry_instant(expires_on).timestamp()


def test_the_lineage_api_console_picture_and_impact_show_an_expiry_at_its_instant(
    api_client: Any, alice: Any, root: Any, redacted: dict[str, Any]
) -> None:
    """The lineage node list, its console page, the picture and the impact report read
    the status now, not the stored one the hourly job has yet to update."""
    expires_on = timezone.localdate() + dt.timedelta(days=3)
    do_update_version_governance(
        actor=alice, version=redacted["original"], changes={"expires_at": expires_on}, reason="contract ends"
    )
    model = redacted["model"]
    client = api_client(alice)
    console = Client()
    console.force_login(root)

    def shown() -> tuple[str, str, str, str]:
        model.refresh_from_db()
        api = client.get(API + f"lineage/nodes/{model.pk}/").json()["effective_status"]
        listed = console.get(reverse("admin:governance_lineagenode_changelist")).content.decode()
        picture = client.get(API + f"lineage/nodes/{model.pk}/svg/").content.decode()
        impact = client.get(API + f"lineage/nodes/{model.pk}/impact/").json()["subject"]["status"]
        quarantined_in_list = "status-quarantined" in listed
        return api, "quarantined" if quarantined_in_list else "active", "status-quarantined" in picture and "quarantined" or "active", impact

    with time_machine.travel(expiry_instant(expires_on) - dt.timedelta(seconds=1), tick=False):
        assert shown() == ("active", "active", "active", "active")
    with time_machine.travel(expiry_instant(expires_on), tick=False):  # the hourly job has not run
        assert LineageNode.objects.get(pk=model.pk).effective_status == "active"  # stored: still active
        assert shown() == ("quarantined", "quarantined", "quarantined", "quarantined")
