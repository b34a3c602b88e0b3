"""The policy API under /api/v1/policies/: status, decide, simulation, the log."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from policies import services
from serving.models import Consumer
from tests.governance.pii_support import PERSON_AND_SSN, scan_and_review

pytestmark = pytest.mark.django_db

API = "/api/v1/policies/"


@pytest.fixture
def claims_v1(claims_dataset: Any, make_version: Any, alice: Any) -> Any:
    """claims-2024 v1: PERSON and US_SSN (scanned and reviewed), fraud prevention only, US only."""
    version = make_version(claims_dataset, PERSON_AND_SSN, allowed_purposes=["fraud_prevention"], residency_regions=["us"])
    return scan_and_review(version, actor=alice, keep={"PERSON", "US_SSN"})


@pytest.mark.parametrize(
    ("method", "url"),
    [
        ("get", API),
        ("post", API + "decide/"),
        ("get", API + "simulate/invokers/?endpoint=x"),
        ("get", API + "simulate/endpoints/?consumer=x"),
        ("post", API + "simulate/change/"),
        ("get", API + "decisions/"),
    ],
)
def test_only_admins_may_use_the_policy_api(api_client: Any, mallory: Any, method: str, url: str) -> None:
    assert getattr(api_client(mallory), method)(url, {}, format="json").status_code == 403


def test_the_status_lists_the_policies_with_their_files(api_client: Any, root: Any) -> None:
    body = api_client(root).get(API).json()
    policies = {policy["id"]: policy for policy in body["policies"]}
    assert policies["pii-clearance"]["file"] == "pii_clearance.cedar"
    assert body["digest"] == services.current_policies().digest and body["last_error"] is None


def test_decide_answers_with_reasons(api_client: Any, root: Any, mallory: Any, claims_v1: Any) -> None:
    response = api_client(root).post(
        API + "decide/",
        {"principal": {"user": "mallory"}, "action": "dataset.read", "resource": {"kind": "DatasetVersion", "id": "claims-2024/v1"}},
        format="json",
    )
    assert response.status_code == 200
    assert response.json()["allowed"] is False
    assert "only admins, its steward (alice)" in response.json()["reason"]


def test_decide_accepts_inline_facts(api_client: Any, root: Any) -> None:
    response = api_client(root).post(
        API + "decide/",
        {
            "principal": {"facts": {"kind": "Consumer", "id": "app", "purposes": ["support"], "region": "eu"}},
            "action": "endpoint.invoke",
            "resource": {"facts": {"kind": "Endpoint", "id": "bot", "purposes": ["support"], "regions": ["us"]}},
        },
        format="json",
    )
    assert response.json()["policies"] == ["residency"]


def test_decide_in_batch(api_client: Any, root: Any, alice: Any, mallory: Any, claims_v1: Any) -> None:
    resource = {"kind": "DatasetVersion", "id": "claims-2024/v1"}
    response = api_client(root).post(
        API + "decide/batch/",
        {"requests": [{"principal": {"user": name}, "action": "dataset.read", "resource": resource} for name in ("alice", "mallory")]},
        format="json",
    )
    assert [d["allowed"] for d in response.json()] == [True, False]


def test_an_unknown_principal_is_a_404_naming_it(api_client: Any, root: Any) -> None:
    response = api_client(root).post(
        API + "decide/",
        {"principal": {"consumer": "ghost"}, "action": "endpoint.invoke", "resource": {"kind": "Endpoint", "id": "x"}},
        format="json",
    )
    assert response.status_code == 404 and "ghost" in response.json()["error"]["message"]


def test_which_consumers_may_invoke_an_endpoint(api_client: Any, root: Any, claims_v1: Any, web_frontend: Consumer, claims_assistant: Consumer) -> None:
    body = api_client(root).get(API + "simulate/invokers/", {"endpoint": "claims-2024/v1"}).json()
    assert body["allowed"] == ["claims-assistant"]
    denied = {d["consumer"]: d for d in body["decisions"]}["web-frontend"]
    assert denied["reason"].startswith("denied: a model trained on claims-2024 v1 holds PERSON and US_SSN")


def test_which_endpoints_may_a_consumer_call(api_client: Any, root: Any, claims_v1: Any, claims_assistant: Consumer) -> None:
    body = api_client(root).get(API + "simulate/endpoints/", {"consumer": "claims-assistant"}).json()
    assert body["allowed"] == ["claims-2024/v1"]


def test_a_declared_purpose_changes_the_simulation(api_client: Any, root: Any, claims_v1: Any, claims_assistant: Consumer) -> None:
    body = api_client(root).get(API + "simulate/endpoints/", {"consumer": "claims-assistant", "purpose": "marketing"}).json()
    assert body["allowed"] == []


def test_a_proposed_policy_change_shows_the_decisions_it_would_change(api_client: Any, root: Any, claims_v1: Any, claims_assistant: Consumer) -> None:
    content = (
        '// Nothing is served in the US.\n@id("residency")\n'
        'forbid (principal, action == Action::"endpoint.invoke", resource)\nwhen { principal.region == "us" };\n'
    )
    response = api_client(root).post(API + "simulate/change/", {"file": "residency.cedar", "content": content}, format="json")
    body = response.json()
    assert response.status_code == 200 and body["valid"] is True
    (change,) = body["changes"]
    assert (change["principal"], change["action"]) == ("consumer claims-assistant", "endpoint.invoke")
    assert (change["before"]["outcome"], change["after"]["outcome"]) == ("allow", "deny")


def test_a_proposed_change_changes_nothing_live(api_client: Any, root: Any, claims_v1: Any, claims_assistant: Consumer) -> None:
    before = services.current_policies().digest
    api_client(root).post(API + "simulate/change/", {"file": "endpoint_invoke.cedar", "content": None}, format="json")
    assert services.current_policies().digest == before
    assert (Path(services.policy_directory()) / "endpoint_invoke.cedar").exists()


def test_an_invalid_proposed_change_reports_file_and_line(api_client: Any, root: Any) -> None:
    response = api_client(root).post(
        API + "simulate/change/",
        {"file": "owners/research.cedar", "content": '@id("r")\nforbid (principal, action, resource)\nwhen { resource.owner == "x" };\n'},
        format="json",
    )
    assert response.status_code == 400
    problem = response.json()["problems"][0]
    assert (problem["file"], problem["line"]) == ("owners/research.cedar", 3)


def test_a_policy_file_name_outside_the_folder_is_refused(api_client: Any, root: Any) -> None:
    response = api_client(root).post(API + "simulate/change/", {"file": "../settings.cedar", "content": ""}, format="json")
    assert response.status_code == 400 and response.json()["error"]["field"] == "file"


def test_the_decision_log_lists_real_decisions(api_client: Any, root: Any, alice: Any, claims_v1: Any) -> None:
    services.decide(alice, "dataset.read", claims_v1)
    body = api_client(root).get(API + "decisions/", {"outcome": "allow"}).json()
    assert [(row["principal"], row["policies"]) for row in body["results"]] == [("User::alice", ["dataset-read"])]
