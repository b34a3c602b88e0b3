"""Facts for the policy engine, built from Pedigree's models.

The engine (``policies.evaluator``) knows only ``PrincipalFacts`` and
``ResourceFacts``. This module turns users, registered principals (consumers,
registered by ``serving``) and dataset versions into
them, and lets the apps that own other assets (model versions, endpoints)
register providers so that simulation can list them.

``facts_for_dataset_version`` is THE single place where a dataset version's
facts are read: the lineage graph's effective facts (``governance.lineage``),
so a version derived from another (a redacted copy, say) carries what its
upstream demands, and is quarantined when its upstream is revoked.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Protocol, runtime_checkable

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.utils import timezone

from governance.choices import PII_SCAN_INCOMPLETE, Purpose, VersionStatus
from governance.lineage import effective_facts
from governance.lineage.graph import node_for_dataset_version
from governance.lineage.status import EXPIRED, expiry_instant
from governance.models import DatasetVersion
from governance.models.lineage import LineageNode
from pedigree.errors import InvalidInput, NotFound
from pedigree.roles import is_admin
from policies.principals import principal_kind_of
from policies.requests import PrincipalFacts, ResourceFacts


@runtime_checkable
class HasPolicyFacts(Protocol):
    """An asset that describes itself to the policy engine (model versions, endpoints)."""

    def policy_facts(self) -> ResourceFacts: ...


# --- Principals --------------------------------------------------------------------


def facts_for_user(user: AbstractBaseUser | AnonymousUser) -> PrincipalFacts:
    """A signed-in user as a principal: username, teams, admin or not.

    Users carry no PII clearances, purposes or region: those belong to the
    consumers that call models.
    """
    if not user.is_authenticated:
        raise InvalidInput("an anonymous user is not a principal: sign in first", field="principal")
    username = user.get_username()
    groups = getattr(user, "_policy_group_names", None)
    if groups is None:
        groups = frozenset(user.groups.values_list("name", flat=True))  # type: ignore[attr-defined]
    return PrincipalFacts(
        kind="User",
        id=username,
        label=f"user {username}",
        groups=groups,
        is_admin=is_admin(user),  # is_staff alone (a console login) is not admin
    )


def principal_facts(principal: Any) -> PrincipalFacts:
    """Facts for any principal: ``PrincipalFacts``, a registered principal object
    (a ``serving.Consumer``, see ``policies.principals``) or a Django user."""
    if isinstance(principal, PrincipalFacts):
        return principal
    registered = principal_kind_of(principal)
    if registered is not None:
        return registered.facts(principal)
    if isinstance(principal, AbstractBaseUser | AnonymousUser):
        return facts_for_user(principal)
    raise InvalidInput(f"{principal!r} is not a principal (a user or a consumer)", field="principal")


# --- Resources ---------------------------------------------------------------------


def dataset_version_id(version: DatasetVersion) -> str:
    """The resource id of a dataset version: ``<dataset>/v<number>``."""
    return f"{version.dataset.name}/v{version.number}"


def facts_for_dataset_version(version: DatasetVersion) -> ResourceFacts:
    """A dataset version's facts for the policies: its lineage effective facts.

    The single adapter between the catalog and the engine. PII types, licences,
    permissions, purposes, residency, owners and quarantine come from the
    lineage graph (the version's own facts combined with everything upstream
    of it, e.g. the original of a redacted copy); the steward and the team that
    may read it come from its dataset. The status is the one effective status
    every path reads (``governance.lineage.status``): its own when revoked or
    expired (an expiry date applies from its instant), else its lineage's. The
    cache key is the lineage node's facts version, which grows whenever any of
    these change; ``valid_until`` ends a decision when time changes them.
    """
    own = _dataset_version_facts(version)
    effective = _effective_of_version(version)
    return _with_effective(own, effective)


def _effective_of_version(version: DatasetVersion, *, explain: bool = False) -> Any:
    return effective_facts(node=node_for_dataset_version(version), explain=explain)


def _with_effective(own: ResourceFacts, effective: Any) -> ResourceFacts:
    """``own`` (a version's own facts) with its lineage effective facts in force."""
    status = own.status if own.quarantined else effective.status
    until = None if own.quarantined or effective.valid_until is None else effective.valid_until.timestamp()
    return own._replace(
        pii_types=frozenset(effective.pii_types),
        # The graph's answer, or the version's own when the graph says less:
        # an incomplete scan is never hidden by a stale node (fail closed).
        pii_scan_incomplete=own.pii_scan_incomplete | frozenset(effective.pii_scan_incomplete),
        licences=frozenset(effective.licences),
        permissions={
            "training": bool(effective.permissions.get("training")),
            "commercial_use": bool(effective.permissions.get("commercial_use")),
            "attribution": bool(effective.permissions.get("attribution", True)),
            "share_alike": bool(effective.permissions.get("share_alike", False)),
        },
        purposes=own.purposes if effective.allowed_purposes is None else frozenset(effective.allowed_purposes),
        regions=own.regions if effective.residency_regions is None else frozenset(effective.residency_regions),
        owners=own.owners | frozenset(effective.owners),
        status=status,
        quarantined=status != _ACTIVE,
        facts_version=effective.facts_version,
        valid_until=until,
    )


_ACTIVE = VersionStatus.ACTIVE.value


def _dataset_version_facts(version: DatasetVersion) -> ResourceFacts:
    """A version's own fields as facts (before lineage): only the status and
    the names are used as they are; ``_with_effective`` puts the rest in force."""
    dataset = version.dataset
    name = f"{dataset.name} v{version.number}"
    owner = dataset.owner_group.name
    scan_incomplete = version.pii_status in PII_SCAN_INCOMPLETE
    status = str(version.status)
    if status == _ACTIVE and version.expires_at is not None and expiry_instant(version.expires_at) <= timezone.now():
        status = EXPIRED  # its expiry date has passed: expired from that instant, job or no job
    return ResourceFacts(
        kind="DatasetVersion",
        id=f"{dataset.name}/v{version.number}",
        label=f"dataset {name}",
        pii_types=frozenset(version.pii_types),
        licences=frozenset((version.licence,)),
        permissions={
            "training": version.permits_training,
            "commercial_use": version.permits_commercial_use,
            "attribution": version.requires_attribution,
            "share_alike": version.requires_share_alike,
        },
        purposes=frozenset(version.allowed_purposes),
        regions=frozenset(version.residency_regions),
        owners=frozenset((dataset.owner_group.name,)),
        stewards=frozenset((dataset.steward.get_username(),)),
        status=status,
        quarantined=status != _ACTIVE,
        facts_version=version.facts_version,
        pii_scan_incomplete=frozenset((owner,)) if scan_incomplete else frozenset(),
    )


def hypothetical_endpoint(version: DatasetVersion) -> ResourceFacts:
    """An endpoint as if it served a model trained on ``version`` alone.

    Simulation uses these to answer "who could call a model trained on this
    data?". Its facts are what a real endpoint on such a model would carry:
    the version's lineage effective facts (so a redacted copy of a revoked
    version is quarantined here too), and its status is the version's one
    effective status, as ``facts_for_dataset_version`` reads it.
    """
    name = f"{version.dataset.name} v{version.number}"
    effective = _effective_of_version(version, explain=True)
    lineage = facts_from_lineage(effective, "Endpoint")
    version_facts = _with_effective(_dataset_version_facts(version), effective)
    origins = {key: labels for key, labels in lineage.origins.items() if labels != (name,)}
    if version_facts.quarantined and "quarantined:true" not in origins:
        origins["quarantined:true"] = (name,)  # its own status (revoked, or expired by date)
    for team in version_facts.pii_scan_incomplete - lineage.pii_scan_incomplete:
        origins[f"pii_scan_incomplete:{team}"] = (name,)  # its own scan state, if the graph says less
    return lineage._replace(
        id=version_facts.id,
        label=f"a model trained on {name}",
        stewards=version_facts.stewards,
        status=version_facts.status,
        quarantined=version_facts.quarantined,
        valid_until=version_facts.valid_until,
        pii_scan_incomplete=lineage.pii_scan_incomplete | version_facts.pii_scan_incomplete,
        origins=origins,
        derived_verb="draws on",
    )


def resource_facts(resource: Any) -> ResourceFacts:
    """Facts for any resource: ``ResourceFacts``, a dataset version, or an asset
    with a ``policy_facts()`` method (model versions, endpoints)."""
    if isinstance(resource, ResourceFacts):
        return resource
    if isinstance(resource, DatasetVersion):
        return facts_for_dataset_version(resource)
    policy_facts = getattr(resource, "policy_facts", None)  # HasPolicyFacts, without a slow Protocol check
    if policy_facts is not None:
        return policy_facts()  # type: ignore[no-any-return]
    raise InvalidInput(f"{resource!r} is not a resource the policies know", field="resource")


# --- Providers: every resource of a kind, for simulation -------------------------------

ResourceProvider = Callable[[], Iterable[ResourceFacts]]
_providers: dict[str, list[ResourceProvider]] = {}


def register_resource_provider(kind: str, provider: ResourceProvider) -> None:
    """Let simulation list every resource of ``kind`` (serving registers endpoints,
    customization model versions)."""
    if provider not in _providers.setdefault(kind, []):
        _providers[kind].append(provider)


def _versions() -> Iterable[DatasetVersion]:
    return DatasetVersion.objects.select_related("dataset__owner_group", "dataset__steward").order_by(
        "dataset__name", "number"
    )


def _all_dataset_versions() -> Iterable[ResourceFacts]:
    return [facts_for_dataset_version(version) for version in _versions()]


def _hypothetical_endpoints() -> Iterable[ResourceFacts]:
    # Revoked and expired versions are left out (nobody trains on them); one
    # quarantined through its lineage, or expired by date, is listed and denied.
    return [hypothetical_endpoint(version) for version in _versions() if version.status == VersionStatus.ACTIVE]


# --- Model versions and endpoints from the lineage graph ----------------------------------
# Until customization and serving own these assets, the ones recorded in the
# lineage graph (the demo's fine-tunes and endpoints, say) are described to the
# policies by their effective facts.

_LINEAGE_KINDS = {"ModelVersion": "model_version", "Endpoint": "endpoint"}


def facts_from_lineage(effective: Any, kind: str) -> ResourceFacts:
    """``ResourceFacts`` from ``governance.lineage.effective_facts(..., explain=True)``.

    Purposes or regions that nothing upstream restricts (``None``) allow every
    purpose and every region; ``origins`` name the upstream assets that bring
    each PII type and licence, and the cause of a quarantine.
    """
    origins: dict[str, tuple[str, ...]] = {}
    explained = effective.explanations or {}
    for fact in ("pii_types", "licences", "pii_scan_incomplete"):
        for item in explained.get(fact, []):
            labels = tuple(sorted({reason["source"]["label"] for reason in item.get("because", [])}))
            origins[f"{fact}:{item['value']}"] = labels
    regions = _regions_from_lineage(effective.residency_regions, explained.get("residency_regions"))
    causes = tuple(sorted(item["cause"]["label"] for item in explained.get("quarantine", [])))
    if causes:
        origins["quarantined:true"] = causes
    is_model = kind == "ModelVersion"
    return ResourceFacts(
        kind=kind,
        id=effective.reference,
        label=f"{'model' if is_model else 'endpoint'} {effective.label}",
        pii_types=frozenset(effective.pii_types),
        pii_scan_incomplete=frozenset(effective.pii_scan_incomplete),
        licences=frozenset(effective.licences),
        permissions={
            "training": bool(effective.permissions.get("training")),
            "commercial_use": bool(effective.permissions.get("commercial_use")),
            "attribution": bool(effective.permissions.get("attribution", True)),
            "share_alike": bool(effective.permissions.get("share_alike", False)),
        },
        purposes=frozenset(Purpose.values) if effective.allowed_purposes is None else frozenset(effective.allowed_purposes),
        regions=regions,
        owners=frozenset(effective.owners),
        status=effective.status,
        quarantined=effective.quarantined,
        facts_version=effective.facts_version,
        origins=origins,
        derived_verb="was trained on" if is_model else "serves a model trained on",
        valid_until=effective.valid_until.timestamp() if getattr(effective, "valid_until", None) else None,
    )


def facts_for_lineage_asset(kind: str, reference: str, *, explain: bool = False) -> ResourceFacts:
    """The facts of a model version or endpoint recorded in the lineage graph, read now.

    What a serving request reads per call (one query): the asset's stored
    effective facts, with the time-bound ones applied. ``explain`` adds the
    upstream assets that reasons name (a walk of the ancestors); without it a
    denial names the endpoint and the facts, not where they came from.
    """
    policy_kind = {"model_version": "ModelVersion", "endpoint": "Endpoint"}.get(kind)
    if policy_kind is None:
        raise InvalidInput(f"{kind!r} is not a lineage asset the policies decide on: use model_version or endpoint", field="kind")
    return facts_from_lineage(effective_facts(kind, reference, explain=explain), policy_kind)


def _regions_from_lineage(combined: Any, constraints: Any) -> frozenset[str]:
    """Where an asset may be served, with "global" meaning anywhere.

    The lineage graph intersects the region lists upstream as plain sets, so
    data allowed in ``eu`` combined with data allowed ``global`` comes out as no
    region at all. The explained constraints (one region list per upstream
    source) are intersected again here with ``global`` as every region.
    """
    if combined is None:
        return frozenset({"global"})
    if not constraints:
        return frozenset(combined)
    regions: frozenset[str] | None = None
    for constraint in constraints:
        allowed = frozenset(constraint.get("allows", ()))
        if "global" in allowed:
            continue
        regions = allowed if regions is None else regions & allowed
    return frozenset({"global"}) if regions is None else regions


def _lineage_provider(kind: str) -> ResourceProvider:
    def provide() -> list[ResourceFacts]:
        nodes = LineageNode.objects.filter(kind=_LINEAGE_KINDS[kind]).order_by("label")
        return [facts_from_lineage(effective_facts(node=node, explain=True), kind) for node in nodes]

    return provide


register_resource_provider("DatasetVersion", _all_dataset_versions)
register_resource_provider("ModelVersion", _lineage_provider("ModelVersion"))
register_resource_provider("Endpoint", _lineage_provider("Endpoint"))
register_resource_provider("Endpoint", _hypothetical_endpoints)


def resources_of_kind(kind: str) -> list[ResourceFacts]:
    """Every resource of ``kind`` the registered providers know."""
    found: list[ResourceFacts] = []
    for provider in _providers.get(kind, []):
        found.extend(provider())
    return found


def find_resource(kind: str, resource_id: str) -> ResourceFacts:
    """One resource by kind and id; ``NotFound`` names what was looked for."""
    for facts in resources_of_kind(kind):
        if facts.id == resource_id:
            return facts
    raise NotFound(f"no {kind} {resource_id!r} is known to the policies", field="resource")
