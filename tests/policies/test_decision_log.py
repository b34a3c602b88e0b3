"""The decision log: modes, digests, written in bulk off the request path."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from policies import services
from policies.engine import ResourceFacts
from policies.models import PolicyDecision
from serving.models import Consumer

pytestmark = pytest.mark.django_db


def decide_allowed_and_denied(allowed_by: Consumer, denied_to: Consumer, endpoint: ResourceFacts) -> None:
    assert services.decide(allowed_by, "endpoint.invoke", endpoint).allowed
    assert not services.decide(denied_to, "endpoint.invoke", endpoint).allowed


def test_a_decision_is_queued_not_written_on_the_request_path(web_frontend: Consumer, support_bot: ResourceFacts) -> None:
    services.decide(web_frontend, "endpoint.invoke", support_bot)
    assert PolicyDecision.objects.count() == 0 and services.decision_log.pending() == 1


def test_a_flush_writes_the_decision_with_its_reasons_and_digests(web_frontend: Consumer, support_bot: ResourceFacts) -> None:
    decision = services.decide(web_frontend, "endpoint.invoke", support_bot, {"purpose": "support"})
    assert services.decision_log.flush() == 1
    row = PolicyDecision.objects.get()
    assert (row.principal, row.action, row.resource, row.outcome) == (
        "Consumer::web-frontend",
        "endpoint.invoke",
        "Endpoint::support-bot",
        "deny",
    )
    assert row.policies == ["pii-clearance"] and row.reason == decision.reason
    assert row.context == {"purpose": "support"} and row.facts["pii-clearance"]["missing"] == ["PERSON", "US_SSN"]
    assert row.inputs_digest == decision.inputs_digest and row.policy_digest == decision.policy_digest


def test_mode_all_logs_every_decision(claims_assistant: Consumer, web_frontend: Consumer, support_bot: ResourceFacts) -> None:
    decide_allowed_and_denied(claims_assistant, web_frontend, support_bot)
    services.decision_log.flush()
    assert sorted(PolicyDecision.objects.values_list("outcome", flat=True)) == ["allow", "deny"]


def test_mode_denials_logs_only_denials(settings: Any, claims_assistant: Consumer, web_frontend: Consumer, support_bot: ResourceFacts) -> None:
    settings.PEDIGREE_DECISION_LOG = "denials"
    decide_allowed_and_denied(claims_assistant, web_frontend, support_bot)
    services.decision_log.flush()
    assert list(PolicyDecision.objects.values_list("outcome", flat=True)) == ["deny"]


def test_mode_sampled_keeps_denials_and_a_fraction_of_allows(settings: Any, claims_assistant: Consumer, web_frontend: Consumer, support_bot: ResourceFacts) -> None:
    settings.PEDIGREE_DECISION_LOG = "sampled"
    settings.PEDIGREE_DECISION_LOG_SAMPLE_RATE = 0.0
    decide_allowed_and_denied(claims_assistant, web_frontend, support_bot)
    settings.PEDIGREE_DECISION_LOG_SAMPLE_RATE = 1.0
    services.decide(claims_assistant, "endpoint.invoke", support_bot)
    services.decision_log.flush()
    assert sorted(PolicyDecision.objects.values_list("outcome", flat=True)) == ["allow", "deny"]


def test_mode_off_still_logs_errors(settings: Any, web_frontend: Consumer, support_bot: ResourceFacts) -> None:
    settings.PEDIGREE_DECISION_LOG = "off"
    services.decide(web_frontend, "endpoint.invoke", support_bot)
    services.decide(web_frontend, "endpoint.invoke", dataclasses.replace(support_bot, permissions={}, facts_version=99))
    services.decision_log.flush()
    assert list(PolicyDecision.objects.values_list("outcome", flat=True)) == ["error"]


def test_cached_decisions_are_logged_as_cached(web_frontend: Consumer, support_bot: ResourceFacts) -> None:
    services.decide(web_frontend, "endpoint.invoke", support_bot)
    services.decide(web_frontend, "endpoint.invoke", support_bot)
    services.decision_log.flush()
    assert sorted(PolicyDecision.objects.values_list("cached", flat=True)) == [False, True]


def test_the_background_writer_flushes_by_itself(settings: Any, transactional_db: Any, web_frontend: Consumer, support_bot: ResourceFacts) -> None:
    import time

    settings.PEDIGREE_DECISION_LOG_FLUSH_SECONDS = 0.05
    log = services.DecisionLog()
    try:
        log.record(services.decide(web_frontend, "endpoint.invoke", support_bot))
        deadline = time.monotonic() + 10
        while PolicyDecision.objects.count() < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert PolicyDecision.objects.count() >= 1 and log.pending() == 0
    finally:
        log.stop()
