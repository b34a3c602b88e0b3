"""Policy changes are picked up without a restart; invalid ones keep the last good set."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from policies import decisions
from policies.requests import ResourceFacts
from serving.models import Consumer

pytestmark = pytest.mark.django_db


def rewrite(path: Path, text: str) -> None:
    path.write_text(text)
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))  # a visibly newer file


def test_an_edited_policy_file_is_used_without_a_restart(policy_dir: Path, claims_assistant: Consumer, support_bot: ResourceFacts) -> None:
    assert decisions.decide(claims_assistant, "endpoint.invoke", support_bot).allowed
    rewrite(
        policy_dir / "residency.cedar",
        '// Residency: nothing is served in the US any more.\n@id("residency")\n'
        'forbid (principal, action == Action::"endpoint.invoke", resource)\nwhen { principal.region == "us" };\n',
    )
    decision = decisions.decide(claims_assistant, "endpoint.invoke", support_bot)
    assert not decision.allowed and decision.policies == ("residency",)


def test_an_invalid_change_keeps_the_last_good_set_and_says_why(policy_dir: Path, claims_assistant: Consumer, support_bot: ResourceFacts) -> None:
    good = decisions.current_policies().digest
    rewrite(policy_dir / "residency.cedar", '@id("residency")\nforbid (principal, action, resource)\nwhen { principal.planet == "mars" };\n')
    assert decisions.decide(claims_assistant, "endpoint.invoke", support_bot).allowed
    assert decisions.current_policies().digest == good
    status = decisions.policy_status()
    assert status["last_error"]["problems"][0]["file"] == "residency.cedar"
    assert status["last_error"]["problems"][0]["line"] == 3


def test_fixing_the_file_clears_the_reported_problem(policy_dir: Path) -> None:
    original = (policy_dir / "residency.cedar").read_text()
    decisions.current_policies()
    rewrite(policy_dir / "residency.cedar", "@id(\n")
    decisions.current_policies()
    assert decisions.policy_status()["last_error"] is not None
    rewrite(policy_dir / "residency.cedar", original)
    decisions.current_policies()
    assert decisions.policy_status()["last_error"] is None


def test_a_reload_forgets_cached_decisions(policy_dir: Path, claims_assistant: Consumer, support_bot: ResourceFacts) -> None:
    first = decisions.decide(claims_assistant, "endpoint.invoke", support_bot)
    rewrite(policy_dir / "quarantine.cedar", (policy_dir / "quarantine.cedar").read_text() + "\n// reviewed\n")
    second = decisions.decide(claims_assistant, "endpoint.invoke", support_bot)
    assert second is not first and second.policy_digest != first.policy_digest


def test_changes_are_checked_at_most_once_per_interval(settings: Any, policy_dir: Path, claims_assistant: Consumer, support_bot: ResourceFacts) -> None:
    settings.PEDIGREE_POLICY_RELOAD_SECONDS = 3600
    decisions.current_policies()
    rewrite(policy_dir / "endpoint_invoke.cedar", "// no one may call anything\n")
    assert decisions.decide(claims_assistant, "endpoint.invoke", support_bot).allowed
    decisions.reload_policies()
    assert not decisions.decide(claims_assistant, "endpoint.invoke", support_bot).allowed
