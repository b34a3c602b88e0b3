"""The policy test cases in policies/tests/*.yaml, run by pytest with the real engine."""

from __future__ import annotations

import pytest

from policies.evaluator import Evaluator
from policies.loading import load_policy_directory
from policies.testing import PolicyCase, coverage_gaps, load_cases, run_case
from tests.policies.conftest import SHIPPED_POLICIES

BUNDLE = load_policy_directory(SHIPPED_POLICIES)
CASES = load_cases(SHIPPED_POLICIES)
EVALUATOR = Evaluator()


@pytest.mark.parametrize("case", CASES, ids=[case.test_id for case in CASES])
def test_policy_case(case: PolicyCase) -> None:
    result = run_case(BUNDLE, case, EVALUATOR)
    assert result.passed, result.message


def test_every_policy_is_shown_deciding_and_every_rule_file_allowed_and_denied() -> None:
    assert coverage_gaps(BUNDLE, CASES) == []


def test_every_shipped_policy_file_has_a_steward_readable_comment() -> None:
    for name, text in BUNDLE.sources.items():
        assert text.lstrip().startswith("//"), f"{name} should open with a comment saying what it does"
