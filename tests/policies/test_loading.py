"""Loading policy files: every problem names its file and line; start-up refuses bad files."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings

from policies.loading import SCHEMA_FILE, PolicyInvalid, compile_policies, split_policies
from tests.policies.conftest import SHIPPED_POLICIES


def shipped_sources() -> dict[str, str]:
    sources = {SCHEMA_FILE: (SHIPPED_POLICIES / SCHEMA_FILE).read_text()}
    for path in SHIPPED_POLICIES.glob("*.cedar"):
        sources[path.name] = path.read_text()
    for path in (SHIPPED_POLICIES / "owners").glob("*.cedar"):
        sources[f"owners/{path.name}"] = path.read_text()
    return sources


def problems_for(name: str, text: str) -> list[str]:
    sources = shipped_sources()
    sources[name] = text
    with pytest.raises(PolicyInvalid) as caught:
        compile_policies(sources)
    return [str(problem) for problem in caught.value.problems]


def test_the_shipped_policies_compile() -> None:
    bundle = compile_policies(shipped_sources())
    assert "pii-clearance" in bundle.policies
    assert bundle.policies["pii-clearance"].file == "pii_clearance.cedar"


def test_a_policy_reading_an_attribute_the_schema_lacks_is_reported_with_file_and_line() -> None:
    text = '// comment\n\n@id("bad")\nforbid (principal, action, resource)\nwhen {\n  resource.colour == "red"\n};\n'
    problems = problems_for("bad.cedar", text)
    assert "bad.cedar:6: policy bad: attribute `colour` on entity type `DatasetVersion` not found" in problems
    assert all(problem.startswith("bad.cedar:6: policy bad: attribute `colour`") for problem in problems)


def test_a_syntax_error_is_reported_with_file_and_line() -> None:
    text = '@id("one")\npermit (principal, action, resource);\n\n@id("two")\nforbid (principal, action, resource)\nwhne { true };\n'
    (problem,) = problems_for("broken.cedar", text)
    assert problem.startswith("broken.cedar:6: does not parse:")


def test_an_unfinished_policy_is_reported_where_it_starts() -> None:
    text = '@id("one")\npermit (principal, action, resource);\n\n@id("two")\nforbid (principal, action, resource)\n'
    assert problems_for("open.cedar", text) == [
        "open.cedar:4: a policy is not finished: missing ';' at its end?"
    ]


def test_a_policy_without_an_id_is_refused() -> None:
    (problem,) = problems_for("anon.cedar", "permit (principal, action, resource);\n")
    assert problem.startswith("anon.cedar:1: every policy needs an @id")


def test_two_policies_with_the_same_id_are_refused() -> None:
    (problem,) = problems_for("twice.cedar", '@id("residency")\nforbid (principal, action, resource);\n')
    assert problem == "twice.cedar:1: @id 'residency' is also used at residency.cedar:6"


def test_an_owner_file_may_not_permit() -> None:
    text = '@id("owner-research-open")\npermit (principal, action, resource)\nwhen { resource.owners.contains("research") };\n'
    (problem,) = problems_for("owners/research.cedar", text)
    assert "owner files may only forbid" in problem


def test_an_owner_rule_must_be_limited_to_the_owners_data() -> None:
    text = '@id("owner-research-grab")\nforbid (principal, action == Action::"model.export", resource);\n'
    (problem,) = problems_for("owners/research.cedar", text)
    assert problem.startswith("owners/research.cedar:1: policy owner-research-grab: an owner rule must apply only to research's data")


def test_a_schema_error_is_reported_in_the_schema_file() -> None:
    sources = shipped_sources()
    sources[SCHEMA_FILE] = sources[SCHEMA_FILE].replace("commercial: Bool,", "commercial: Boolean,")
    with pytest.raises(PolicyInvalid) as caught:
        compile_policies(sources)
    (problem,) = caught.value.problems
    assert problem.file == SCHEMA_FILE and problem.line > 1 and "Boolean" in problem.message


def test_the_splitter_ignores_semicolons_in_strings_and_comments() -> None:
    text = '// a; b\n@id("x")\nforbid (principal, action, resource)\nwhen { resource.name == "a;b" };\n\n@id("y")\npermit (principal, action, resource);\n'
    chunks, unfinished = split_policies(text)
    assert [line for line, _ in chunks] == [2, 6] and unfinished == 0


def test_the_service_does_not_start_with_an_invalid_policy(tmp_path: Path) -> None:
    folder = tmp_path / "policies"
    folder.mkdir()
    (folder / SCHEMA_FILE).write_text((SHIPPED_POLICIES / SCHEMA_FILE).read_text())
    (folder / "bad.cedar").write_text('@id("bad")\nforbid (principal, action, resource)\nwhen { principal.age > 3 };\n')
    env = {**os.environ, "PEDIGREE_POLICY_DIR": str(folder), "DJANGO_SETTINGS_MODULE": "pedigree.test_settings"}
    result = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=settings.BASE_DIR, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode != 0
    assert "bad.cedar:3: policy bad:" in result.stderr
    assert "attribute `age`" in result.stderr
