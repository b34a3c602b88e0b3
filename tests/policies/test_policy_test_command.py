"""`manage.py policy_test` runs the YAML cases and fails on a wrong expectation."""

from __future__ import annotations

from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command


def test_the_shipped_cases_pass() -> None:
    out = StringIO()
    call_command("policy_test", stdout=out)
    assert "0 coverage gaps" in out.getvalue()


def test_a_case_expecting_the_wrong_decision_fails(policy_dir: Path) -> None:
    path = policy_dir / "tests" / "residency.yaml"
    path.write_text(path.read_text().replace("expect: deny\n    deciding: [residency]", "expect: allow\n    deciding: [residency]", 1))
    out = StringIO()
    with pytest.raises(CommandError):
        call_command("policy_test", stdout=out)
    assert "FAIL residency: a consumer outside the allowed regions may not call: expected allow, got deny" in out.getvalue()


def test_a_policy_without_cases_is_a_coverage_gap(policy_dir: Path) -> None:
    (policy_dir / "extra.cedar").write_text('// Extra.\n@id("no-export-at-all")\nforbid (principal, action == Action::"model.export", resource);\n')
    out = StringIO()
    with pytest.raises(CommandError):
        call_command("policy_test", stdout=out)
    assert "extra.cedar:2: no test case shows policy no-export-at-all deciding" in out.getvalue()


def test_invalid_policy_files_fail_with_file_and_line(policy_dir: Path) -> None:
    (policy_dir / "extra.cedar").write_text('@id("x")\nforbid (principal, action, resource)\nwhen { nope };\n')
    err = StringIO()
    with pytest.raises(CommandError):
        call_command("policy_test", stderr=err)
    assert "extra.cedar:3:" in err.getvalue()
