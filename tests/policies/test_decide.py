"""decide(): decisions with reasons, fail closed, cache, batch, and the download wiring."""

from __future__ import annotations

from typing import Any

import pytest

from governance.services import do_update_version_governance
from policies import services
from policies.engine import PrincipalFacts, ResourceFacts
from policies.facts import facts_for_dataset_version, hypothetical_endpoint
from policies.models import PolicyDecision
from serving.models import Consumer

pytestmark = pytest.mark.django_db


def test_a_denial_names_the_data_its_pii_and_the_missing_clearance(web_frontend: Consumer, support_bot: ResourceFacts) -> None:
    decision = services.decide(web_frontend, "endpoint.invoke", support_bot)
    assert not decision.allowed
    assert decision.policies == ("pii-clearance",)
    assert decision.reason.startswith(
        "denied: model support-bot v3 was trained on claims-2024 v2, which holds PERSON and US_SSN; "
        "consumer web-frontend is cleared for neither"
    )


def test_a_denial_carries_the_facts_that_triggered_it(web_frontend: Consumer, support_bot: ResourceFacts) -> None:
    decision = services.decide(web_frontend, "endpoint.invoke", support_bot)
    assert decision.facts["pii-clearance"]["missing"] == ["PERSON", "US_SSN"]
    assert decision.facts["pii-clearance"]["from"] == ["claims-2024 v2"]


def test_a_cleared_consumer_is_allowed_with_the_permitting_policy(claims_assistant: Consumer, support_bot: ResourceFacts) -> None:
    decision = services.decide(claims_assistant, "endpoint.invoke", support_bot)
    assert decision.allowed and decision.policies == ("endpoint-invoke",)
    assert decision.reason.startswith("allowed: consumer claims-assistant may call model support-bot v3")


def test_a_declared_purpose_the_data_does_not_allow_is_denied(claims_assistant: Consumer, support_bot: ResourceFacts) -> None:
    decision = services.decide(claims_assistant, "endpoint.invoke", support_bot, {"purpose": "marketing"})
    assert decision.policies == ("purpose-limitation",)
    assert "has not declared the purpose marketing" in decision.reason


def test_decisions_carry_the_digests_of_their_inputs_and_policies(web_frontend: Consumer, support_bot: ResourceFacts) -> None:
    first = services.decide(web_frontend, "endpoint.invoke", support_bot, use_cache=False)
    other = services.decide(web_frontend, "endpoint.invoke", support_bot._replace(regions=frozenset({"eu"})), use_cache=False)
    assert len(first.inputs_digest) == 64 and first.inputs_digest != other.inputs_digest
    assert first.policy_digest == services.current_policies().digest


def test_missing_facts_deny_as_an_error(web_frontend: Consumer, support_bot: ResourceFacts) -> None:
    broken = support_bot._replace(permissions={"training": True})
    decision = services.decide(web_frontend, "endpoint.invoke", broken)
    assert not decision.allowed and decision.outcome == "error"
    assert "could not decide" in decision.reason


def test_a_request_the_schema_does_not_allow_is_an_error_not_an_allow(web_frontend: Consumer, support_bot: ResourceFacts) -> None:
    decision = services.decide(web_frontend, "model.export", support_bot)
    assert decision.outcome == "error" and not decision.allowed


def test_an_unknown_action_is_an_error_decision(web_frontend: Consumer, support_bot: ResourceFacts) -> None:
    decision = services.decide(web_frontend, "endpoint.delete", support_bot)
    assert decision.outcome == "error" and "unknown action" in decision.reason


def test_a_policy_set_that_cannot_be_read_denies_everything(settings: Any, tmp_path: Any, web_frontend: Consumer, support_bot: ResourceFacts) -> None:
    settings.PEDIGREE_POLICY_DIR = tmp_path / "nowhere"
    decision = services.decide(web_frontend, "endpoint.invoke", support_bot)
    assert decision.outcome == "error" and not decision.allowed


def test_an_error_decision_is_logged_as_an_error(web_frontend: Consumer, support_bot: ResourceFacts) -> None:
    services.decide(web_frontend, "endpoint.delete", support_bot)
    services.decision_log.flush()
    assert PolicyDecision.objects.get().outcome == "error"


def test_a_repeated_question_is_answered_from_the_cache(web_frontend: Consumer, support_bot: ResourceFacts) -> None:
    first = services.decide(web_frontend, "endpoint.invoke", support_bot)
    assert services.decide(web_frontend, "endpoint.invoke", support_bot) is first


def test_a_change_to_the_consumer_is_never_answered_from_the_old_cache(web_frontend: Consumer, support_bot: ResourceFacts) -> None:
    assert not services.decide(web_frontend, "endpoint.invoke", support_bot).allowed
    web_frontend.pii_clearances = ["PERSON", "US_SSN"]
    web_frontend.commercial = False
    web_frontend.save()
    assert services.decide(web_frontend, "endpoint.invoke", support_bot).allowed


def test_a_new_facts_version_of_the_resource_misses_the_cache(claims_assistant: Consumer, support_bot: ResourceFacts) -> None:
    assert services.decide(claims_assistant, "endpoint.invoke", support_bot).allowed
    revoked = support_bot._replace(quarantined=True, status="revoked", facts_version=4)
    assert services.decide(claims_assistant, "endpoint.invoke", revoked).policies == ("quarantine",)


def test_the_batch_form_decides_each_request(web_frontend: Consumer, claims_assistant: Consumer, support_bot: ResourceFacts) -> None:
    decisions = services.decide_many(
        [
            (web_frontend, "endpoint.invoke", support_bot, None),
            (claims_assistant, "endpoint.invoke", support_bot, None),
            (web_frontend, "endpoint.delete", support_bot, None),
        ]
    )
    assert [decision.outcome for decision in decisions] == ["deny", "allow", "error"]


def test_the_batch_form_agrees_with_single_decisions(web_frontend: Consumer, claims_assistant: Consumer, support_bot: ResourceFacts) -> None:
    requests = [(consumer, "endpoint.invoke", support_bot, None) for consumer in (web_frontend, claims_assistant)]
    batch = services.decide_many(requests, log=False)
    single = [services.decide(*request, use_cache=False) for request in requests]
    assert [d.reason for d in batch] == [d.reason for d in single]


def test_principal_facts_can_be_given_directly(support_bot: ResourceFacts) -> None:
    principal = PrincipalFacts("Consumer", "tool", pii_clearances=frozenset({"PERSON"}), purposes=frozenset({"support"}), region="us")
    decision = services.decide(principal, "endpoint.invoke", support_bot)
    assert "is cleared for PERSON but not US_SSN" in decision.reason


def test_a_dataset_versions_facts_come_from_its_own_fields(alice: Any, claims_dataset: Any, make_version: Any) -> None:
    version = make_version(claims_dataset, allowed_purposes=["support"], residency_regions=["eu"])
    facts = facts_for_dataset_version(version)
    assert facts.id == "claims-2024/v1" and facts.owners == {"claims-team"} and facts.stewards == {"alice"}
    assert facts.licences == {"MIT"} and facts.permissions["training"] is True
    assert facts.purposes == {"support"} and facts.regions == {"eu"} and not facts.quarantined


def test_a_hypothetical_endpoint_names_the_data_it_would_be_trained_on(web_frontend: Consumer, alice: Any, claims_dataset: Any, make_version: Any) -> None:
    version = make_version(claims_dataset, allowed_purposes=["support"], residency_regions=["us"])
    version.pii_types = ["US_SSN"]
    version.facts_version += 1  # as the PII review does: the lineage reads the new facts
    version.save(update_fields=["pii_types", "facts_version"])
    decision = services.decide(web_frontend, "endpoint.invoke", hypothetical_endpoint(version))
    assert decision.reason.startswith(
        "denied: a model trained on claims-2024 v1 holds US_SSN; consumer web-frontend is not cleared for it"
    )


def test_governance_changes_bump_the_facts_version_seen_by_the_policies(alice: Any, claims_dataset: Any, make_version: Any) -> None:
    version = make_version(claims_dataset)
    before = facts_for_dataset_version(version).facts_version
    version = do_update_version_governance(actor=alice, version=version, changes={"residency_regions": ["eu"]}, reason="EU only")
    assert facts_for_dataset_version(version).facts_version == (before or 0) + 1
