"""The decision log: modes, digests, written in bulk off the request path."""

from __future__ import annotations

from typing import Any

import pytest

from policies import decision_log as log_module
from policies import decisions
from policies.decision_log import DecisionLog, decision_log
from policies.models import DecisionDetail, PolicyDecision
from policies.requests import ResourceFacts
from serving.models import Consumer

pytestmark = pytest.mark.django_db


def decide_allowed_and_denied(allowed_by: Consumer, denied_to: Consumer, endpoint: ResourceFacts) -> None:
    assert decisions.decide(allowed_by, "endpoint.invoke", endpoint).allowed
    assert not decisions.decide(denied_to, "endpoint.invoke", endpoint).allowed


def test_a_decision_is_queued_not_written_on_the_request_path(web_frontend: Consumer, support_bot: ResourceFacts) -> None:
    decisions.decide(web_frontend, "endpoint.invoke", support_bot)
    assert PolicyDecision.objects.count() == 0 and decision_log.pending() == 1


def test_a_flush_writes_the_decision_with_its_reasons_and_digests(web_frontend: Consumer, support_bot: ResourceFacts) -> None:
    decision = decisions.decide(web_frontend, "endpoint.invoke", support_bot, {"purpose": "support"})
    assert decision_log.flush() == 1
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
    decision_log.flush()
    assert sorted(PolicyDecision.objects.values_list("outcome", flat=True)) == ["allow", "deny"]


def test_mode_denials_logs_only_denials(settings: Any, claims_assistant: Consumer, web_frontend: Consumer, support_bot: ResourceFacts) -> None:
    settings.PEDIGREE_DECISION_LOG = "denials"
    decide_allowed_and_denied(claims_assistant, web_frontend, support_bot)
    decision_log.flush()
    assert list(PolicyDecision.objects.values_list("outcome", flat=True)) == ["deny"]


def test_mode_sampled_keeps_denials_and_a_fraction_of_allows(settings: Any, claims_assistant: Consumer, web_frontend: Consumer, support_bot: ResourceFacts) -> None:
    settings.PEDIGREE_DECISION_LOG = "sampled"
    settings.PEDIGREE_DECISION_LOG_SAMPLE_RATE = 0.0
    decide_allowed_and_denied(claims_assistant, web_frontend, support_bot)
    settings.PEDIGREE_DECISION_LOG_SAMPLE_RATE = 1.0
    decisions.decide(claims_assistant, "endpoint.invoke", support_bot)
    decision_log.flush()
    assert sorted(PolicyDecision.objects.values_list("outcome", flat=True)) == ["allow", "deny"]


def test_mode_off_still_logs_errors(settings: Any, web_frontend: Consumer, support_bot: ResourceFacts) -> None:
    settings.PEDIGREE_DECISION_LOG = "off"
    decisions.decide(web_frontend, "endpoint.invoke", support_bot)
    decisions.decide(web_frontend, "endpoint.invoke", support_bot._replace(permissions={}, facts_version=99))
    decision_log.flush()
    assert list(PolicyDecision.objects.values_list("outcome", flat=True)) == ["error"]


def test_cached_decisions_are_logged_as_cached(web_frontend: Consumer, support_bot: ResourceFacts) -> None:
    decisions.decide(web_frontend, "endpoint.invoke", support_bot)
    decisions.decide(web_frontend, "endpoint.invoke", support_bot)
    decision_log.flush()
    assert sorted(PolicyDecision.objects.values_list("cached", flat=True)) == [False, True]


def test_the_background_writer_flushes_by_itself(settings: Any, transactional_db: Any, web_frontend: Consumer, support_bot: ResourceFacts) -> None:
    import time

    settings.PEDIGREE_DECISION_LOG_FLUSH_SECONDS = 0.05
    log = DecisionLog()
    try:
        log.record(decisions.decide(web_frontend, "endpoint.invoke", support_bot))
        deadline = time.monotonic() + 10
        while log.pending() and time.monotonic() < deadline:
            time.sleep(0.05)  # no queries meanwhile: SQLite's shared test database would lock
        assert log.pending() == 0  # the writer took it by itself
    finally:
        log.stop()  # waits for the write in progress
        decision_log.stop()  # decide() queued it in the service's own log too
    assert PolicyDecision.objects.count() == 2


def test_repeated_questions_share_one_stored_detail(
    django_capture_on_commit_callbacks: Any, web_frontend: Consumer, claims_assistant: Consumer, support_bot: ResourceFacts
) -> None:
    for _ in range(3):
        decide_allowed_and_denied(claims_assistant, web_frontend, support_bot)
    with django_capture_on_commit_callbacks(execute=True):
        assert decision_log.flush() == 6
    assert PolicyDecision.objects.count() == 6 and DecisionDetail.objects.count() == 2
    denied = PolicyDecision.objects.filter(outcome="deny")
    assert denied.values("detail").distinct().count() == 1
    assert all(row.reason.startswith("denied: ") and row.policies == ["pii-clearance"] for row in denied)


def test_once_a_detail_is_stored_later_decisions_queue_only_their_row(
    django_capture_on_commit_callbacks: Any, web_frontend: Consumer, support_bot: ResourceFacts
) -> None:
    decisions.decide(web_frontend, "endpoint.invoke", support_bot, use_cache=False)
    with django_capture_on_commit_callbacks(execute=True):
        decision_log.flush()
    decisions.decide(web_frontend, "endpoint.invoke", support_bot, use_cache=False)
    (queued,) = decision_log._buffer
    assert queued[2][6] == PolicyDecision.objects.get().detail_id and len(queued) == 3  # no decision object rides along
    with django_capture_on_commit_callbacks(execute=True):
        decision_log.flush()
    assert PolicyDecision.objects.count() == 2 and DecisionDetail.objects.count() == 1


def test_a_detail_is_not_trusted_before_its_transaction_commits(web_frontend: Consumer, support_bot: ResourceFacts) -> None:
    # Inside the test's transaction nothing commits: every decision carries its detail.
    decisions.decide(web_frontend, "endpoint.invoke", support_bot, use_cache=False)
    decision_log.flush()
    decisions.decide(web_frontend, "endpoint.invoke", support_bot, use_cache=False)
    (queued,) = decision_log._buffer
    assert queued[2] is None and len(queued) == 4  # the decision rides along to be explained


def test_the_same_facts_from_other_data_get_their_own_reason(web_frontend: Consumer, support_bot: ResourceFacts) -> None:
    # Same Cedar entities, but the PII comes from another upstream dataset: the reason differs, so must the digest.
    other_origin = support_bot._replace(origins={"pii_types:PERSON": ("hr-2023 v1",), "pii_types:US_SSN": ("hr-2023 v1",)})
    first = decisions.decide(web_frontend, "endpoint.invoke", support_bot, use_cache=False)
    second = decisions.decide(web_frontend, "endpoint.invoke", other_origin, use_cache=False)
    assert first.inputs_digest != second.inputs_digest and first.reason != second.reason
    decision_log.flush()
    assert DecisionDetail.objects.count() == 2
    assert {row.reason for row in PolicyDecision.objects.all()} == {first.reason, second.reason}


def test_a_failed_flush_forgets_the_stored_details(
    monkeypatch: Any, django_capture_on_commit_callbacks: Any, web_frontend: Consumer, support_bot: ResourceFacts
) -> None:
    decisions.decide(web_frontend, "endpoint.invoke", support_bot, use_cache=False)
    with django_capture_on_commit_callbacks(execute=True):
        decision_log.flush()
    assert decision_log._known
    decisions.decide(web_frontend, "endpoint.invoke", support_bot, use_cache=False)

    def broken(*args: Any) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(log_module, "_insert_rows", broken)
    with pytest.raises(RuntimeError):
        decision_log.flush()
    assert not decision_log._known
    assert decision_log.pending() == 1  # kept, to be tried again


def test_a_batch_that_cannot_be_written_is_tried_again_then_dropped(
    monkeypatch: Any, web_frontend: Consumer, support_bot: ResourceFacts
) -> None:
    original = log_module._insert_rows
    attempts = []

    def failing_once(*args: Any) -> None:
        attempts.append(1)
        if len(attempts) == 1:
            raise RuntimeError("database restarting")
        original(*args)

    monkeypatch.setattr(log_module, "_insert_rows", failing_once)
    decisions.decide(web_frontend, "endpoint.invoke", support_bot)
    with pytest.raises(RuntimeError):
        decision_log.flush()
    assert decision_log.flush() == 1 and PolicyDecision.objects.count() == 1

    def always_failing(*args: Any) -> None:
        raise RuntimeError("a row the database refuses")

    monkeypatch.setattr(log_module, "_insert_rows", always_failing)
    decisions.decide(web_frontend, "endpoint.invoke", support_bot, use_cache=False)
    for _ in range(DecisionLog.MAX_ATTEMPTS):
        with pytest.raises(RuntimeError):
            decision_log.flush()
    assert decision_log.pending() == 0 and decision_log.dropped >= 1


def test_the_row_keeps_the_decision_time_to_the_microsecond(web_frontend: Consumer, support_bot: ResourceFacts) -> None:
    import datetime as dt

    before = dt.datetime.now(dt.UTC)
    decisions.decide(web_frontend, "endpoint.invoke", support_bot)
    queued_at = decision_log._buffer[0][0]
    decision_log.flush()
    row = PolicyDecision.objects.get()
    assert row.decided_at == dt.datetime.fromtimestamp(queued_at / 1_000_000, tz=dt.UTC)
    assert before <= row.decided_at <= dt.datetime.now(dt.UTC)


def test_the_thread_that_fills_a_batch_writes_it(
    monkeypatch: Any, settings: Any, transactional_db: Any, web_frontend: Consumer, support_bot: ResourceFacts
) -> None:
    monkeypatch.setattr(DecisionLog, "TRANSACTION_ROWS", 3)
    settings.PEDIGREE_DECISION_LOG_FLUSH_SECONDS = 3600  # the writer thread will not get to it
    try:
        for _ in range(2):
            decisions.decide(web_frontend, "endpoint.invoke", support_bot, use_cache=False)
        assert decision_log.pending() == 2 and PolicyDecision.objects.count() == 0
        decisions.decide(web_frontend, "endpoint.invoke", support_bot, use_cache=False)
        assert decision_log.pending() == 0 and PolicyDecision.objects.count() == 3
    finally:
        decision_log.stop()


def test_a_batch_filled_inside_a_transaction_waits_for_the_writer(
    monkeypatch: Any, settings: Any, web_frontend: Consumer, support_bot: ResourceFacts
) -> None:
    # A rollback of the caller's transaction must not take logged decisions with it.
    monkeypatch.setattr(DecisionLog, "TRANSACTION_ROWS", 2)
    settings.PEDIGREE_DECISION_LOG_FLUSH_SECONDS = 3600
    try:
        for _ in range(3):
            decisions.decide(web_frontend, "endpoint.invoke", support_bot, use_cache=False)
        assert decision_log.pending() == 3 and PolicyDecision.objects.count() == 0
    finally:
        decision_log.discard()  # else stopping the writer thread would write them, committed for good
        decision_log.stop()
