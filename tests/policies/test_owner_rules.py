"""Owner policy files restrict only their team's data (issue 9, "Who may do what").

A file in ``owners/<team>.cedar`` may only forbid, and each rule must require
``resource.owners.contains("<team>")`` at the top level of a ``when``. The
check reads the policy's structure (Cedar's JSON form), so the attempts that
mention the team's name without requiring its ownership are refused with the
file, the line and why; and the forms it accepts are checked from the
attacker's side: evaluated on another team's data, they never deny.
"""

from __future__ import annotations

import pytest

from policies.engine import (
    DecisionRequest,
    Evaluator,
    PrincipalFacts,
    ResourceFacts,
    compile_policies,
)
from tests.policies.test_loading import problems_for, shipped_sources

FILE = "owners/claims-team.cedar"
WHY = "policy owner-claims-team-grab: an owner rule must apply only to claims-team's data: "

REFUSED = {
    "unless": (
        '@id("owner-claims-team-grab")\n'
        'forbid (principal, action == Action::"endpoint.invoke", resource)\n'
        'unless { resource.owners.contains("claims-team") };\n',
        3,
        'resource.owners.contains("claims-team") inside `unless` makes the rule apply to every other team\'s data',
    ),
    "or": (
        '@id("owner-claims-team-grab")\n'
        'forbid (principal, action == Action::"endpoint.invoke", resource)\n'
        "when {\n"
        '  resource.owners.contains("claims-team")\n'
        '  || principal.region == "eu"\n'
        "};\n",
        5,
        "is one alternative of `||`",
    ),
    "or-after-and": (  # && binds tighter: (a && b) || c is an alternative, not a requirement
        '@id("owner-claims-team-grab")\n'
        'forbid (principal, action == Action::"endpoint.invoke", resource)\n'
        'when { resource.owners.contains("claims-team") && principal.region == "us" || principal.region == "eu" };\n',
        3,
        "is one alternative of `||`",
    ),
    "not": (
        '@id("owner-claims-team-grab")\n'
        'forbid (principal, action == Action::"endpoint.invoke", resource)\n'
        'when { principal.region == "eu" &&\n'
        '  !resource.owners.contains("claims-team") };\n',
        4,
        "is negated with `!`",
    ),
    "double-not": (
        '@id("owner-claims-team-grab")\n'
        'forbid (principal, action == Action::"endpoint.invoke", resource)\n'
        'when { !(!resource.owners.contains("claims-team")) };\n',
        3,
        "is negated with `!`",
    ),
    "if-then-else": (
        '@id("owner-claims-team-grab")\n'
        'forbid (principal, action == Action::"endpoint.invoke", resource)\n'
        'when { if principal.is_admin then true else resource.owners.contains("claims-team") };\n',
        3,
        "is nested inside `if-then-else`",
    ),
    "name-in-a-string": (
        '@id("owner-claims-team-grab")\n'
        'forbid (principal, action == Action::"endpoint.invoke", resource)\n'
        'when { principal.name != "resource.owners.contains(\\"claims-team\\")" };\n',
        1,
        'the rule does not require resource.owners.contains("claims-team")',
    ),
    "other-team": (
        '@id("owner-claims-team-grab")\n'
        'forbid (principal, action == Action::"endpoint.invoke", resource)\n'
        'when { resource.owners.contains("support-team") };\n',
        1,
        'the rule does not require resource.owners.contains("claims-team")',
    ),
    "contains-any": (
        '@id("owner-claims-team-grab")\n'
        'forbid (principal, action == Action::"endpoint.invoke", resource)\n'
        'when { resource.owners.containsAny(["claims-team", "support-team"]) };\n',
        1,
        'the rule does not require resource.owners.contains("claims-team")',
    ),
}


@pytest.mark.parametrize("form", sorted(REFUSED))
def test_an_owner_rule_that_does_not_require_the_teams_ownership_is_refused_with_file_line_and_why(form: str) -> None:
    text, line, why = REFUSED[form]
    (problem,) = problems_for(FILE, text)
    assert problem.startswith(f"{FILE}:{line}: {WHY}"), problem
    assert why in problem
    assert problem.endswith('write when { resource.owners.contains("claims-team") && ... }')


ACCEPTED = {
    "contains-and": 'when { resource.owners.contains("claims-team") && principal.region == "eu" }',
    "and-contains-and-not": 'when { principal.region == "eu" && resource.owners.contains("claims-team") && !principal.is_admin }',
    "contains-all": 'when { resource.owners.containsAll(["claims-team", "support-team"]) }',
    "second-when": 'when { principal.region == "eu" || principal.is_admin } when { resource.owners.contains("claims-team") }',
    "with-unless": 'when { resource.owners.contains("claims-team") } unless { principal.groups.contains("claims-team") || principal.is_admin }',
}


def _bundle_with(rule: str) -> object:
    sources = shipped_sources()
    sources[FILE] = f'@id("owner-claims-team-rule")\nforbid (principal, action == Action::"endpoint.invoke", resource)\n{rule};\n'
    return compile_policies(sources)


@pytest.mark.parametrize("form", sorted(ACCEPTED))
def test_an_owner_rule_that_requires_the_teams_ownership_never_denies_another_teams_data(form: str) -> None:
    bundle = _bundle_with(ACCEPTED[form])
    evaluator = Evaluator()
    permissions = {"training": True, "commercial_use": True, "attribution": False, "share_alike": False}
    for region, is_admin in (("eu", False), ("eu", True), ("us", False)):
        consumer = PrincipalFacts(kind="Consumer", id="helpdesk", region=region, is_admin=is_admin, purposes=frozenset({"support"}))
        for owners, owned in ((frozenset({"support-team"}), False), (frozenset({"claims-team", "support-team"}), True)):
            endpoint = ResourceFacts(
                kind="Endpoint", id="bot", label="endpoint bot", licences=frozenset({"MIT"}), permissions=permissions,
                purposes=frozenset({"support"}), regions=frozenset({"global"}), owners=owners,
            )
            decision = evaluator.decide(bundle, DecisionRequest(consumer, "endpoint.invoke", endpoint))  # type: ignore[arg-type]
            if not owned:
                assert "owner-claims-team-rule" not in decision.policies, (form, region, is_admin)


def test_an_accepted_owner_rule_still_restricts_the_teams_own_data() -> None:
    bundle = _bundle_with(ACCEPTED["contains-and"])
    consumer = PrincipalFacts(kind="Consumer", id="helpdesk", region="eu", purposes=frozenset({"support"}))
    endpoint = ResourceFacts(
        kind="Endpoint", id="bot", label="endpoint bot", licences=frozenset({"MIT"}),
        permissions={"training": True, "commercial_use": True, "attribution": False, "share_alike": False},
        purposes=frozenset({"support"}), regions=frozenset({"global"}), owners=frozenset({"claims-team"}),
    )
    decision = Evaluator().decide(bundle, DecisionRequest(consumer, "endpoint.invoke", endpoint))  # type: ignore[arg-type]
    assert (decision.allowed, decision.policies) == (False, ("owner-claims-team-rule",))
