"""Simulation: who may call what, and what a proposed policy file would change.

Nothing is logged or changed by a simulation. Also resolves the principals
and resources named in API calls and commands.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from django.contrib.auth import get_user_model

from pedigree.errors import InvalidInput, NotFound
from policies.decisions import current_policies, decide_many
from policies.evaluator import Evaluator
from policies.facts import find_resource, principal_facts, resource_facts, resources_of_kind
from policies.loading import SCHEMA_FILE, PolicyInvalid, PolicyProblem, compile_policies
from policies.principals import principal_kind, registered_principals
from policies.requests import (
    ACTION_TARGETS,
    Decision,
    DecisionRequest,
    ResourceFacts,
    principal_from_data,
    resource_from_data,
)


def _consumers() -> list[Any]:
    return registered_principals("Consumer")


def _users() -> list[Any]:
    users = list(get_user_model().objects.filter(is_active=True).order_by("username").prefetch_related("groups"))
    for user in users:
        # facts_for_user reads this instead of querying each user's groups again
        user._policy_group_names = frozenset(group.name for group in user.groups.all())  # type: ignore[attr-defined]
    return users


def who_may_invoke(endpoint: ResourceFacts, context: Mapping[str, Any] | None = None) -> list[tuple[Any, Decision]]:
    """Which consumers may call ``endpoint``? Every consumer, with its decision.

    A simulation: nothing is logged.
    """
    consumers = _consumers()
    decisions = decide_many([(consumer, "endpoint.invoke", endpoint, context) for consumer in consumers], log=False)
    return list(zip(consumers, decisions, strict=True))


def endpoints_for(consumer: Any, context: Mapping[str, Any] | None = None) -> list[tuple[ResourceFacts, Decision]]:
    """Which endpoints may ``consumer`` call? Every known endpoint, with its decision.

    A simulation: nothing is logged.
    """
    endpoints = resources_of_kind("Endpoint")
    decisions = decide_many([(consumer, "endpoint.invoke", endpoint, context) for endpoint in endpoints], log=False)
    return list(zip(endpoints, decisions, strict=True))


@dataclass
class DecisionChange:
    """One decision that a proposed policy change would change."""

    principal: str
    action: str
    resource: str
    before: Decision
    after: Decision

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON values for the API."""
        return {
            "principal": self.principal,
            "action": self.action,
            "resource": self.resource,
            "before": {"outcome": self.before.outcome, "policies": list(self.before.policies), "reason": self.before.reason},
            "after": {"outcome": self.after.outcome, "policies": list(self.after.policies), "reason": self.after.reason},
        }


@dataclass
class PolicyDiff:
    """What would change if a policy file were applied: problems, or the changed decisions."""

    file: str
    valid: bool
    problems: list[PolicyProblem] = field(default_factory=list)
    evaluated: int = 0
    changes: list[DecisionChange] = field(default_factory=list)
    current_digest: str = ""
    proposed_digest: str = ""

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON values for the API."""
        return {
            "file": self.file,
            "valid": self.valid,
            "problems": [problem.as_dict() for problem in self.problems],
            "evaluated": self.evaluated,
            "changed": len(self.changes),
            "changes": [change.as_dict() for change in self.changes],
            "current_digest": self.current_digest,
            "proposed_digest": self.proposed_digest,
        }


MAX_SIMULATED_DECISIONS = 50_000


def _check_policy_file_name(name: str) -> str:
    clean = name.strip().lstrip("/")
    parts = clean.split("/")
    valid = (
        clean == SCHEMA_FILE
        or (len(parts) == 1 and clean.endswith(".cedar"))
        or (len(parts) == 2 and parts[0] == "owners" and parts[1].endswith(".cedar"))
    )
    if not valid or any(part in {"", ".", ".."} for part in parts):
        raise InvalidInput(
            f"{name!r} is not a policy file name: use <name>.cedar, owners/<team>.cedar or {SCHEMA_FILE}",
            field="file",
        )
    return clean


def all_requests() -> list[tuple[Any, str, Any, None]]:
    """Every (principal, action, resource) pair the schema allows, over everything known."""
    users, consumers = _users(), _consumers()
    principals = {"User": users, "Consumer": consumers}
    resources = {kind: resources_of_kind(kind) for kind in ("DatasetVersion", "ModelVersion", "Endpoint")}
    requests: list[tuple[Any, str, Any, None]] = []
    for action, (principal_type, resource_kind) in ACTION_TARGETS.items():
        for resource in resources[resource_kind]:
            for principal in principals[principal_type]:
                requests.append((principal, action, resource, None))
    return requests


def simulate_policy_change(file: str, content: str | None) -> PolicyDiff:
    """What would change if ``file`` had ``content`` (``None``: if it were deleted)?

    Checks the proposed set as start-up would, then decides every
    principal x action x resource pair under the current and the proposed set
    and returns the decisions that differ. Nothing is logged or changed.
    """
    name = _check_policy_file_name(file)
    current = current_policies()
    sources = dict(current.sources)
    if content is None:
        if name not in sources:
            raise NotFound(f"there is no policy file {name} to delete", field="file")
        del sources[name]
    else:
        sources[name] = content
    diff = PolicyDiff(file=name, valid=False, current_digest=current.digest)
    try:
        proposed = compile_policies(sources)
    except PolicyInvalid as error:
        diff.problems = error.problems
        return diff
    diff.valid, diff.proposed_digest = True, proposed.digest
    requests = all_requests()[:MAX_SIMULATED_DECISIONS]
    built = []
    for principal, action, resource, context in requests:
        built.append(DecisionRequest(principal_facts(principal), action, resource_facts(resource), context or {}))
    simulator = Evaluator()
    before = simulator.decide_batch(current, built)
    after = simulator.decide_batch(proposed, built)
    diff.evaluated = len(built)
    for request, old, new in zip(built, before, after, strict=True):
        if old.outcome != new.outcome or old.policies != new.policies:
            diff.changes.append(
                DecisionChange(
                    principal=request.principal.display,
                    action=request.action,
                    resource=request.resource.label,
                    before=old,
                    after=new,
                )
            )
    return diff



# --- References: principals and resources named in API calls and commands ---------------


def resolve_principal(reference: Mapping[str, Any]) -> Any:
    """A principal from ``{"user": name}``, ``{"consumer": name}`` or ``{"facts": {...}}``."""
    if "facts" in reference:
        return principal_from_data(reference["facts"])
    if "consumer" in reference:
        consumer = principal_kind("Consumer").named(str(reference["consumer"]))
        if consumer is None:
            raise NotFound(f"no consumer named {reference['consumer']!r}", field="principal.consumer")
        return consumer
    if "user" in reference:
        user = get_user_model().objects.filter(username=reference["user"]).first()
        if user is None:
            raise NotFound(f"no user named {reference['user']!r}", field="principal.user")
        return user
    raise InvalidInput('name the principal as {"user": ...}, {"consumer": ...} or {"facts": {...}}', field="principal")


def resolve_resource(reference: Mapping[str, Any]) -> ResourceFacts:
    """A resource from ``{"kind": ..., "id": ...}`` (e.g. DatasetVersion claims-2024/v1,
    Endpoint support-bot) or inline ``{"facts": {...}}``."""
    if "facts" in reference:
        return resource_from_data(reference["facts"])
    kind, resource_id = reference.get("kind"), reference.get("id")
    if not kind or not resource_id:
        raise InvalidInput('name the resource as {"kind": ..., "id": ...} or {"facts": {...}}', field="resource")
    return find_resource(str(kind), str(resource_id))
