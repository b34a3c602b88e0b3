"""Explanations: the facts that triggered each deciding policy, and the sentence.

Each shipped policy has an explainer that names the facts that triggered it
and says, in one clause, what a person could change. A policy without an
explainer (a team's own rule, say) is explained by its ``@reason`` annotation.
Pure: no Django import.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from policies.engine import DecisionRequest, PolicyBundle, ResourceFacts

ACTION_VERBS = {
    "dataset.read": "read",
    "dataset.train": "train on",
    "model.deploy": "deploy",
    "model.export": "export",
    "endpoint.invoke": "call",
}


Explainer = Callable[["DecisionRequest"], tuple[dict[str, Any], str]]


def human_list(items: Iterable[str], conjunction: str = "and") -> str:
    """``["a", "b", "c"]`` -> ``"a, b and c"``."""
    values = list(items)
    if not values:
        return "none"
    if len(values) == 1:
        return values[0]
    return f"{', '.join(values[:-1])} {conjunction} {values[-1]}"


def _holder_phrase(resource: ResourceFacts, fact: str, values: Sequence[str], what: str) -> str:
    """"model m v3 was trained on claims-2024 v2, which holds X" or "dataset d v1 holds X"."""
    upstream = resource.sources_of(fact, values)
    if upstream:
        verb = "holds" if len(upstream) == 1 else "hold"
        return f"{resource.label} {resource.derived_verb} {human_list(upstream)}, which {verb} {what}"
    return f"{resource.label} holds {what}"


def _explain_pii(request: DecisionRequest) -> tuple[dict[str, Any], str]:
    principal, resource = request.principal, request.resource
    types = sorted(resource.pii_types)
    missing = sorted(resource.pii_types - principal.pii_clearances)
    cleared = sorted(resource.pii_types & principal.pii_clearances)
    facts = {"pii_types": types, "pii_clearances": sorted(principal.pii_clearances), "missing": missing}
    upstream = resource.sources_of("pii_types", missing)
    if upstream:
        facts["from"] = upstream
    if not cleared:
        clearance = {1: "is not cleared for it", 2: "is cleared for neither"}.get(len(types), "is cleared for none of them")
    else:
        clearance = f"is cleared for {human_list(cleared)} but not {human_list(missing, 'or')}"
    text = f"{_holder_phrase(resource, 'pii_types', missing, human_list(types))}; {principal.display} {clearance}"
    return facts, text + f" (clear it for {human_list(missing)}, or serve a model trained on redacted data)"


def _explain_licence_training(request: DecisionRequest) -> tuple[dict[str, Any], str]:
    resource = request.resource
    licences = sorted(resource.licences)
    facts = {"licences": licences, "permits_training": False}
    what = f"data under {human_list(licences)}, whose terms do not permit training"
    return facts, _holder_phrase(resource, "licences", licences, what)


def _explain_licence_commercial(request: DecisionRequest) -> tuple[dict[str, Any], str]:
    principal, resource = request.principal, request.resource
    licences = sorted(resource.licences)
    facts = {"commercial": True, "licences": licences, "permits_commercial_use": False}
    what = f"data under {human_list(licences)}, which forbids commercial use"
    return facts, f"{_holder_phrase(resource, 'licences', licences, what)}; {principal.display} is commercial"


def _explain_purpose(request: DecisionRequest) -> tuple[dict[str, Any], str]:
    principal, resource = request.principal, request.resource
    allowed = sorted(resource.purposes)
    facts: dict[str, Any] = {"allowed_purposes": allowed, "declared_purposes": sorted(principal.purposes)}
    allowed_text = f"only {human_list(allowed, 'or')}" if allowed else "no purpose at all (none declared upstream)"
    purpose = request.context.get("purpose")
    if purpose is not None:
        facts["purpose"] = purpose
        if purpose not in principal.purposes:
            return facts, f"{principal.display} has not declared the purpose {purpose} (it declares {human_list(sorted(principal.purposes))})"
        return facts, f"the data behind {resource.label} may serve {allowed_text}, not {purpose}"
    if not principal.purposes:
        return facts, f"{principal.display} declares no purpose; declare one that the data allows ({human_list(allowed, 'or')})"
    extra = sorted(principal.purposes - resource.purposes)
    facts["not_allowed"] = extra
    text = (
        f"{principal.display} declares {human_list(sorted(principal.purposes))}, but the data behind "
        f"{resource.label} may serve {allowed_text}"
    )
    if len(extra) < len(principal.purposes):
        text += f" (declare the purpose of each call, or drop {human_list(extra)})"
    return facts, text


def _explain_residency(request: DecisionRequest) -> tuple[dict[str, Any], str]:
    principal, resource = request.principal, request.resource
    regions = sorted(resource.regions)
    facts = {"regions": regions, "region": principal.region}
    where = f"only in {human_list(regions, 'or')}" if regions else "nowhere (no residency region declared upstream)"
    return facts, f"{resource.label} may be served {where}; {principal.display} is in {principal.region or 'no region'}"


def _explain_quarantine(request: DecisionRequest) -> tuple[dict[str, Any], str]:
    resource = request.resource
    facts = {"quarantined": True, "status": resource.status}
    upstream = resource.sources_of("quarantined", ["true"])
    cause = f" because {human_list(upstream)} is revoked or expired" if upstream else f" ({resource.status})"
    return facts, f"{resource.label} is quarantined{cause}; nothing but admin reads are allowed"


def _explain_owner_read(request: DecisionRequest) -> tuple[dict[str, Any], str]:
    principal, resource = request.principal, request.resource
    if principal.is_admin:
        return {"is_admin": True}, f"{principal.display} is an admin"
    if principal.id in resource.stewards:
        return {"steward": principal.id}, f"{principal.display} is its steward"
    shared = sorted(principal.groups & resource.owners)
    if shared:
        return {"owner_groups": shared}, f"{principal.display} is in {human_list(shared)}, which owns it"
    if "ml-platform" in principal.groups:
        return {"groups": ["ml-platform"]}, f"{principal.display} is in ml-platform"
    return {}, "a policy permits it"


def _explain_pii_scan(request: DecisionRequest) -> tuple[dict[str, Any], str]:
    resource = request.resource
    teams = sorted(resource.pii_scan_incomplete)
    upstream = resource.sources_of("pii_scan_incomplete", teams)
    if upstream:
        whose = "whose PII scan is" if len(upstream) == 1 else "whose PII scans are"
        subject = f"{resource.label} {resource.derived_verb} {human_list(upstream)}, {whose} not complete"
    else:
        subject = f"the PII scan of {resource.label} is not complete"
    text = f"{subject} (unscanned, scanning or failed): nobody knows what personal data it holds; scan the data to lift this"
    return {"pii_scan_incomplete": teams, "upstream": upstream}, text


EXPLAINERS: dict[str, Explainer] = {
    "pii-scan-incomplete": _explain_pii_scan,
    "pii-clearance": _explain_pii,
    "licence-training": _explain_licence_training,
    "licence-commercial": _explain_licence_commercial,
    "purpose-limitation": _explain_purpose,
    "residency": _explain_residency,
    "quarantine": _explain_quarantine,
    "dataset-read": _explain_owner_read,
    "dataset-train": _explain_owner_read,
    "model-deploy": _explain_owner_read,
    "model-export": _explain_owner_read,
    "endpoint-invoke": lambda request: ({}, f"{request.principal.display} is a registered consumer"),
}


def _no_permit_hint(bundle: PolicyBundle, request: DecisionRequest) -> str:
    resource = request.resource
    if request.action == "dataset.read":
        return (
            f"only admins, its steward ({human_list(sorted(resource.stewards), 'or')}) and members of "
            f"{human_list(sorted(resource.owners), 'or')} may read it"
        )
    permits = [
        info.reason
        for info in bundle.policies.values()
        if info.effect == "permit" and info.reason and f'"{request.action}"' in info.text
    ]
    return "; ".join(permits) if permits else "no policy permits this action"


def explain(
    bundle: PolicyBundle, request: DecisionRequest, allowed: bool, deciding: Sequence[str]
) -> tuple[dict[str, Any], str]:
    """The triggering facts (by policy) and the sentence for a decision."""
    principal, resource = request.principal, request.resource
    verb = ACTION_VERBS.get(request.action, request.action)
    facts: dict[str, Any] = {}
    clauses: list[str] = []
    for policy_id in deciding:
        explainer = EXPLAINERS.get(policy_id)
        if explainer is not None:
            policy_facts, clause = explainer(request)
        else:
            info = bundle.policies.get(policy_id)
            policy_facts = {}
            clause = info.reason if info and info.reason else f"policy {policy_id} decides so"
        facts[policy_id] = policy_facts
        clauses.append(clause)
    if allowed:
        because = "; ".join(clauses)
        return facts, f"allowed: {principal.display} may {verb} {resource.label} ({because})"
    if not deciding:
        hint = _no_permit_hint(bundle, request)
        return facts, f"denied: no policy lets {principal.display} {verb} {resource.label}: {hint}"
    return facts, "denied: " + "; and ".join(clauses)
