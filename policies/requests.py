"""What the engine is asked and what it answers: facts, requests, decisions.

``PrincipalFacts`` and ``ResourceFacts`` are the facts a request carries,
``DecisionRequest`` a question, ``Decision`` the answer with its reasons.
Pure Python, no Django import.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from types import MappingProxyType
from typing import Any, NamedTuple

import orjson

from pedigree.errors import InvalidInput

ACTIONS = ("dataset.read", "dataset.train", "model.deploy", "model.export", "endpoint.invoke")
PRINCIPAL_KINDS = ("User", "Consumer")
RESOURCE_KINDS = ("DatasetVersion", "ModelVersion", "Endpoint")
# Which principal and resource kinds each action applies to (as in the schema).
ACTION_TARGETS: dict[str, tuple[str, str]] = {
    "dataset.read": ("User", "DatasetVersion"),
    "dataset.train": ("User", "DatasetVersion"),
    "model.deploy": ("User", "ModelVersion"),
    "model.export": ("User", "ModelVersion"),
    "endpoint.invoke": ("Consumer", "Endpoint"),
}
PERMISSION_NAMES = ("training", "commercial_use", "attribution", "share_alike")


# --- Facts ------------------------------------------------------------------------


# Facts are immutable records built on every uncached decision, so they are
# named tuples: as read-only as a frozen dataclass and about three times
# cheaper to build (a frozen dataclass sets each field through
# object.__setattr__). Change one with ``facts._replace(field=value)``.

_NO_MAPPING: Mapping[str, Any] = MappingProxyType({})


class PrincipalFacts(NamedTuple):
    """Who asks: a user or a consumer, with the attributes policies read.

    ``facts_version`` lets the decision cache trust a previous answer; leave it
    ``None`` when the facts are not versioned (they are then rebuilt each call).
    """

    kind: str
    id: str
    label: str = ""
    groups: frozenset[str] = frozenset()
    is_admin: bool = False
    pii_clearances: frozenset[str] = frozenset()
    purposes: frozenset[str] = frozenset()
    region: str = ""
    commercial: bool = False
    facts_version: int | None = None

    def to_entity(self) -> dict[str, Any]:
        """The Cedar entity (JSON form) for this principal."""
        return {
            "uid": {"type": self.kind, "id": self.id},
            "attrs": {
                "name": self.id,
                "is_admin": self.is_admin,
                "groups": sorted(self.groups),
                "pii_clearances": sorted(self.pii_clearances),
                "purposes": sorted(self.purposes),
                "region": self.region,
                "commercial": self.commercial,
            },
            "parents": [],
        }

    @property
    def display(self) -> str:
        """How sentences name the principal (e.g. "consumer web-frontend")."""
        return self.label or f"{self.kind.lower()} {self.id}"


class ResourceFacts(NamedTuple):
    """What is asked about: a dataset version, model version or endpoint, with its
    effective lineage facts.

    This is the typed interface every asset kind plugs into: the catalog builds
    it from a dataset version (``policies.facts``), and model versions and
    endpoints build it from their lineage. ``origins`` says where an inherited
    fact comes from, keyed ``"<fact>:<value>"`` (e.g. ``"pii_types:US_SSN"`` ->
    ``("claims-2024 v2",)``), so reasons can name the upstream data;
    ``derived_verb`` phrases that link ("was trained on"). ``valid_until``
    (seconds since the epoch) is the instant at which time alone changes
    these facts (an expiry, a lapsing quarantine exception): a decision on
    them ends there, and facts read before it are stale after it.
    """

    kind: str
    id: str
    label: str
    pii_types: frozenset[str] = frozenset()
    licences: frozenset[str] = frozenset()
    permissions: Mapping[str, bool] = _NO_MAPPING
    purposes: frozenset[str] = frozenset()
    regions: frozenset[str] = frozenset()
    owners: frozenset[str] = frozenset()
    stewards: frozenset[str] = frozenset()
    status: str = "active"
    quarantined: bool = False
    facts_version: int | None = None
    origins: Mapping[str, tuple[str, ...]] = _NO_MAPPING
    derived_verb: str = "was trained on"
    # Teams owning data upstream whose PII scan is not complete (unscanned,
    # running or failed): see policies/pii_scan.cedar.
    pii_scan_incomplete: frozenset[str] = frozenset()
    valid_until: float | None = None

    def to_entity(self) -> dict[str, Any]:
        """The Cedar entity (JSON form) for this resource."""
        permissions = self.permissions
        return {
            "uid": {"type": self.kind, "id": self.id},
            "attrs": {
                "name": self.label,
                "pii_types": sorted(self.pii_types),
                "pii_scan_incomplete": sorted(self.pii_scan_incomplete),
                "licences": sorted(self.licences),
                "permits": {  # PERMISSION_NAMES, spelled out: this runs on every uncached decision
                    "training": bool(permissions["training"]),
                    "commercial_use": bool(permissions["commercial_use"]),
                    "attribution": bool(permissions["attribution"]),
                    "share_alike": bool(permissions["share_alike"]),
                },
                "purposes": sorted(self.purposes),
                "regions": sorted(self.regions),
                "owners": sorted(self.owners),
                "stewards": sorted(self.stewards),
                "quarantined": self.quarantined,
                "status": self.status,
                "facts_version": self.facts_version or 0,
            },
            "parents": [],
        }

    def sources_of(self, fact: str, values: Iterable[str]) -> list[str]:
        """The upstream assets (labels) that bring ``values`` of ``fact``, when not this one."""
        found: set[str] = set()
        for value in values:
            found.update(self.origins.get(f"{fact}:{value}", ()))
        found.discard(self.label)
        return sorted(found)


def principal_from_data(data: Mapping[str, Any]) -> PrincipalFacts:
    """Build ``PrincipalFacts`` from plain data (policy tests, API what-ifs)."""
    known = set(PrincipalFacts._fields)
    unknown = set(data) - known
    if unknown:
        raise InvalidInput(f"principal has unknown fields: {', '.join(sorted(unknown))}", field="principal")
    if data.get("kind") not in PRINCIPAL_KINDS or not data.get("id"):
        raise InvalidInput(
            f"principal needs kind ({' or '.join(PRINCIPAL_KINDS)}) and id", field="principal"
        )
    values = dict(data)
    for name in ("groups", "pii_clearances", "purposes"):
        values[name] = frozenset(_string_list(values.get(name, []), f"principal.{name}"))
    return PrincipalFacts(**values)


def resource_from_data(data: Mapping[str, Any]) -> ResourceFacts:
    """Build ``ResourceFacts`` from plain data (policy tests, API what-ifs)."""
    known = set(ResourceFacts._fields)
    unknown = set(data) - known
    if unknown:
        raise InvalidInput(f"resource has unknown fields: {', '.join(sorted(unknown))}", field="resource")
    if data.get("kind") not in RESOURCE_KINDS or not data.get("id"):
        raise InvalidInput(f"resource needs kind ({', '.join(RESOURCE_KINDS)}) and id", field="resource")
    values = dict(data)
    values.setdefault("label", f"{values['kind']} {values['id']}")
    for name in ("pii_types", "licences", "purposes", "regions", "owners", "stewards", "pii_scan_incomplete"):
        values[name] = frozenset(_string_list(values.get(name, []), f"resource.{name}"))
    permissions = values.get("permissions") or {}
    unknown_permissions = set(permissions) - set(PERMISSION_NAMES)
    if unknown_permissions:
        raise InvalidInput(
            f"unknown permission {sorted(unknown_permissions)[0]!r}: use {', '.join(PERMISSION_NAMES)}",
            field="resource.permissions",
        )
    values["permissions"] = {name: bool(permissions.get(name, False)) for name in PERMISSION_NAMES}
    values["origins"] = {key: tuple(labels) for key, labels in (values.get("origins") or {}).items()}
    until = values.get("valid_until")
    if until is not None and (isinstance(until, bool) or not isinstance(until, int | float)):
        raise InvalidInput("resource.valid_until must be seconds since the epoch, or null", field="resource.valid_until")
    return ResourceFacts(**values)


def _string_list(value: Any, name: str) -> list[str]:
    if not isinstance(value, list | tuple | set | frozenset) or not all(isinstance(v, str) for v in value):
        raise InvalidInput(f"{name} must be a list of strings", field=name)
    return list(value)


# --- Decisions ----------------------------------------------------------------------


class DecisionRequest(NamedTuple):
    """One question for the engine: may ``principal`` do ``action`` to ``resource``?"""

    principal: PrincipalFacts
    action: str
    resource: ResourceFacts
    context: Mapping[str, Any] = _NO_MAPPING


class Decision:
    """The engine's answer, with its reasons.

    ``outcome`` is ``allow``, ``deny`` or ``error`` (an error always denies).
    ``policies`` are the ``@id`` of the deciding policies (the permits that
    allowed, or the forbids that denied; empty when nothing permitted),
    ``facts`` the facts that triggered them, ``reason`` a sentence a person can
    act on. The digests identify the inputs and the policy set in force.

    The facts and the sentence are composed when first read (a denial
    message, the decision log, the API), so a caller that only needs
    ``allowed`` of a decision the log does not keep never pays for them.
    Treat a decision as immutable.
    """

    __slots__ = (
        "allowed",
        "outcome",
        "policies",
        "principal",
        "action",
        "resource",
        "context",
        "policy_digest",
        "inputs_digest",
        "_facts",
        "_reason",
        "_explain",
        "_log_detail",
    )

    def __init__(
        self,
        allowed: bool,
        outcome: str,
        policies: tuple[str, ...],
        principal: str,
        action: str,
        resource: str,
        context: Mapping[str, Any],
        policy_digest: str,
        inputs_digest: str,
        facts: Mapping[str, Any] | None = None,
        reason: str | None = None,
        explain: Callable[[], tuple[dict[str, Any], str]] | None = None,
    ) -> None:
        if reason is None and explain is None:
            raise ValueError("a decision needs a reason or a way to explain itself")
        self.allowed = allowed
        self.outcome = outcome
        self.policies = policies
        self.principal = principal
        self.action = action
        self.resource = resource
        self.context = context
        self.policy_digest = policy_digest
        self.inputs_digest = inputs_digest
        self._facts = facts if facts is not None else ({} if reason is not None else None)
        self._reason = reason
        self._explain = explain
        self._log_detail: tuple[str, str, str, str] | None = None

    def log_detail(self) -> tuple[str, str, str, str]:
        """What the decision said, as JSON text for the decision log (computed once):
        context, policies and facts as JSON, and the reason."""
        if self._log_detail is None:
            self._log_detail = (
                orjson.dumps(dict(self.context), option=orjson.OPT_SORT_KEYS).decode(),
                orjson.dumps(self.policies).decode(),
                orjson.dumps(self.facts, option=orjson.OPT_SORT_KEYS).decode(),
                self.reason,
            )
        return self._log_detail

    def _explained(self) -> None:
        assert self._explain is not None
        facts, reason = self._explain()
        self._facts, self._reason, self._explain = facts, reason, None

    @property
    def facts(self) -> Mapping[str, Any]:
        """The facts that triggered the deciding policies, by policy."""
        if self._reason is None:
            self._explained()
        assert self._facts is not None
        return self._facts

    @property
    def reason(self) -> str:
        """A sentence a person can act on."""
        if self._reason is None:
            self._explained()
        assert self._reason is not None
        return self._reason

    def __repr__(self) -> str:
        return f"Decision({self.outcome}, {self.principal} {self.action} {self.resource}, policies={self.policies})"

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON values (API bodies, reports)."""
        return {
            "allowed": self.allowed,
            "outcome": self.outcome,
            "policies": list(self.policies),
            "facts": dict(self.facts),
            "reason": self.reason,
            "principal": self.principal,
            "action": self.action,
            "resource": self.resource,
            "context": dict(self.context),
            "policy_digest": self.policy_digest,
            "inputs_digest": self.inputs_digest,
        }


def error_decision(
    message: str,
    *,
    principal: str = "",
    action: str = "",
    resource: str = "",
    context: Mapping[str, Any] | None = None,
    policy_digest: str = "",
    inputs_digest: str = "",
) -> Decision:
    """A denial caused by an error: the engine fails closed."""
    return Decision(
        allowed=False,
        outcome="error",
        policies=(),
        facts={"error": message},
        reason=f"denied: the policy engine could not decide ({message}); it denies when in doubt",
        principal=principal,
        action=action,
        resource=resource,
        context=dict(context or {}),
        policy_digest=policy_digest,
        inputs_digest=inputs_digest,
    )
