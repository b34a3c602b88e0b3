"""Policy tests as data: the cases in ``policies/tests/*.yaml``, and their runner.

A case names a principal, an action, a resource (their facts), an optional
context, the expected decision and the deciding policies. A file may set
``defaults`` for ``principal``, ``resource`` and ``context``; each case's
values are laid over them. ``python manage.py policy_test`` and pytest
(``tests/policies/test_policy_cases.py``) both run them through this module.

Pure: no Django import.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from pedigree.errors import InvalidInput
from policies.evaluator import Evaluator
from policies.loading import PolicyBundle
from policies.requests import (
    Decision,
    DecisionRequest,
    PrincipalFacts,
    ResourceFacts,
    principal_from_data,
    resource_from_data,
)

CASE_FIELDS = {"name", "principal", "action", "resource", "context", "expect", "deciding"}


@dataclass(frozen=True)
class PolicyCase:
    """One example decision a policy author expects."""

    file: str
    name: str
    principal: PrincipalFacts
    action: str
    resource: ResourceFacts
    context: dict[str, Any]
    expect: str
    deciding: frozenset[str]

    @property
    def test_id(self) -> str:
        """A readable pytest id: "<file stem>: <case name>"."""
        return f"{Path(self.file).stem}: {self.name}"


@dataclass(frozen=True)
class CaseResult:
    """What the engine decided for a case, and whether that was expected."""

    case: PolicyCase
    decision: Decision
    passed: bool
    message: str


def load_cases(directory: Path | str) -> list[PolicyCase]:
    """Every case of every ``tests/*.yaml`` file under the policy folder."""
    root = Path(directory) / "tests"
    cases: list[PolicyCase] = []
    for path in sorted(root.glob("*.yaml")):
        cases.extend(load_case_file(path, relative_to=Path(directory)))
    return cases


def load_case_file(path: Path, relative_to: Path | None = None) -> list[PolicyCase]:
    """The cases of one YAML file; ``InvalidInput`` names the file and case at fault."""
    name = str(path.relative_to(relative_to)) if relative_to else str(path)
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as error:
        raise InvalidInput(f"{name}: not valid YAML: {error}", file=name) from None
    defaults = document.get("defaults") or {}
    cases = []
    for index, raw in enumerate(document.get("cases") or [], start=1):
        label = raw.get("name") or f"case {index}"
        unknown = set(raw) - CASE_FIELDS
        if unknown:
            raise InvalidInput(f"{name}: case {label!r} has unknown keys {sorted(unknown)}", file=name)
        expect = raw.get("expect")
        if expect not in {"allow", "deny"}:
            raise InvalidInput(f"{name}: case {label!r} must expect allow or deny", file=name)
        try:
            principal = principal_from_data({**(defaults.get("principal") or {}), **(raw.get("principal") or {})})
            resource = resource_from_data({**(defaults.get("resource") or {}), **(raw.get("resource") or {})})
        except InvalidInput as error:
            raise InvalidInput(f"{name}: case {label!r}: {error.message}", file=name) from None
        cases.append(
            PolicyCase(
                file=name,
                name=label,
                principal=principal,
                action=str(raw.get("action", "")),
                resource=resource,
                context={**(defaults.get("context") or {}), **(raw.get("context") or {})},
                expect=expect,
                deciding=frozenset(raw.get("deciding") or ()),
            )
        )
    return cases


def run_case(bundle: PolicyBundle, case: PolicyCase, evaluator: Evaluator | None = None) -> CaseResult:
    """Decide a case with the real engine and compare with what it expects."""
    decision = (evaluator or Evaluator()).decide(
        bundle, DecisionRequest(case.principal, case.action, case.resource, case.context)
    )
    problems = []
    if decision.outcome != case.expect:
        problems.append(f"expected {case.expect}, got {decision.outcome}")
    if frozenset(decision.policies) != case.deciding:
        problems.append(
            f"expected deciding policies {sorted(case.deciding)}, got {sorted(decision.policies)}"
        )
    message = "; ".join(problems) + (f" ({decision.reason})" if problems else "")
    return CaseResult(case=case, decision=decision, passed=not problems, message=message)


def coverage_gaps(bundle: PolicyBundle, cases: list[PolicyCase]) -> list[str]:
    """Policies that no case shows deciding, and rule files without both an allowed
    and a denied case."""
    gaps = []
    deciding = {policy for case in cases for policy in case.deciding}
    for policy_id, info in sorted(bundle.policies.items()):
        if policy_id not in deciding:
            gaps.append(f"{info.file}:{info.line}: no test case shows policy {policy_id} deciding")
    for file in sorted({case.file for case in cases}):
        outcomes = {case.expect for case in cases if case.file == file}
        for missing in {"allow", "deny"} - outcomes:
            gaps.append(f"{file}: no case expects {missing}")
    return gaps
