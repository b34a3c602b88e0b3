"""Reading effective facts, each with the path of assets that brought it in.

``effective_facts`` is what the policy engine, serving and the console read.
It returns the stored facts (no recomputation), with two fail-closed checks:
a dataset version whose facts moved on without a sync is re-synced first, and
the time-bound facts apply from their instant (``governance.lineage.status``):
an asset whose quarantine exception has lapsed, or whose expiry (its own or
one upstream) has passed, reads as quarantined or expired even before the
hourly task applies the change.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from governance.lineage.queries import chunks, walk
from governance.lineage.status import own_expiry_of, status_now, valid_until
from governance.models.lineage import LineageNode


@dataclass(frozen=True)
class EffectiveFacts:
    """An asset's effective facts: its own combined with everything upstream.

    - ``status``: active, quarantined, revoked or expired; ``quarantined`` is
      True for anything but active (deny use).
    - ``pii_types``, ``owners``, ``licences``: unions over the asset and its upstream.
    - ``pii_scan_incomplete``: the teams owning data upstream whose PII scan is
      not complete (unscanned, running or failed); empty when every scan is done.
    - ``allowed_purposes``, ``residency_regions``: intersections; ``None`` when
      nothing upstream restricts them.
    - ``permissions``: training / commercial_use (permitted only if every
      licence permits) and attribution / share_alike (required if any requires).
    - ``obligations``: whom to credit, what to share alike, non-commercial and
      no-training licences; ``conflicts``: licence combinations that cannot all
      be honoured.
    - ``facts_version``: grows whenever any of this changes; cache by it.
    - ``valid_until``: the next instant at which time alone changes the
      status (an expiry, a lapsing exception); a cached decision ends there.
    - ``explanations`` (when asked for): per fact, each value with the sources
      that brought it in and the path from each source to this asset.
    """

    node_id: int
    kind: str
    reference: str
    label: str
    facts_version: int
    status: str
    quarantined: bool
    pii_types: frozenset[str]
    pii_scan_incomplete: frozenset[str]
    owners: frozenset[str]
    licences: frozenset[str]
    allowed_purposes: frozenset[str] | None
    residency_regions: frozenset[str] | None
    permissions: Mapping[str, bool]
    obligations: Mapping[str, Any]
    conflicts: tuple[Mapping[str, Any], ...]
    status_note: str = ""
    explanations: Mapping[str, Any] | None = None
    valid_until: dt.datetime | None = None

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON, as the API returns it."""
        return {
            "node": {"id": self.node_id, "kind": self.kind, "reference": self.reference, "label": self.label},
            "facts_version": self.facts_version,
            "status": self.status,
            "quarantined": self.quarantined,
            "status_note": self.status_note,
            "valid_until": self.valid_until.isoformat() if self.valid_until else None,
            "pii_types": sorted(self.pii_types),
            "pii_scan_incomplete": sorted(self.pii_scan_incomplete),
            "owners": sorted(self.owners),
            "licences": sorted(self.licences),
            "allowed_purposes": None if self.allowed_purposes is None else sorted(self.allowed_purposes),
            "residency_regions": None if self.residency_regions is None else sorted(self.residency_regions),
            "permissions": dict(self.permissions),
            "obligations": dict(self.obligations),
            "conflicts": [dict(item) for item in self.conflicts],
            "explanations": self.explanations,
        }


def effective_facts(
    kind: str | None = None,
    reference: str | None = None,
    *,
    node: LineageNode | None = None,
    explain: bool = False,
    now: dt.datetime | None = None,
) -> EffectiveFacts:
    """The stored effective facts of asset ``(kind, reference)`` (or of ``node``).

    This is the one read the policy engine and serving need: cheap (one row,
    plus the ancestors when ``explain``), current (refreshed on every change
    upstream in the writer's transaction), and fail-closed (see the module
    docstring). Cache by ``facts_version``.
    """
    from governance.lineage.graph import find_node
    from governance.lineage.services import ensure_synced

    if node is None:
        if kind is None or reference is None:
            raise TypeError("effective_facts needs (kind, reference) or node=")
        node = find_node(kind, reference)
    node = ensure_synced(node)
    summary = node.facts["summary"]
    own_expiry = own_expiry_of(node.pk, node.effective_quarantine.get("expiries"))
    status, note = status_now(summary["status"], summary, own_expiry=own_expiry, now=now)

    def optional(values: list[str] | None) -> frozenset[str] | None:
        return None if values is None else frozenset(values)

    return EffectiveFacts(
        node_id=node.pk,
        kind=node.kind,
        reference=node.reference,
        label=node.label,
        facts_version=node.facts_version,
        status=status,
        quarantined=status != "active",
        status_note=note,
        pii_types=frozenset(summary["pii_types"]),
        pii_scan_incomplete=frozenset(summary.get("pii_scan_incomplete") or ()),
        owners=frozenset(summary["owners"]),
        licences=frozenset(summary["licences"]),
        allowed_purposes=optional(summary["allowed_purposes"]),
        residency_regions=optional(summary["residency_regions"]),
        permissions=summary["permissions"],
        obligations=summary["obligations"],
        conflicts=tuple(summary["conflicts"]),
        explanations=explain_facts(node) if explain else None,
        valid_until=valid_until(summary, own_expiry=own_expiry) if status == "active" else None,
    )


def _ancestors(node: LineageNode) -> dict[int, LineageNode]:
    ids = list(walk([node.pk], direction="up"))
    found: dict[int, LineageNode] = {}
    for batch in chunks(ids):
        for item in LineageNode.objects.filter(pk__in=batch).only(
            "id", "kind", "reference", "label", "effective_facts", "effective_quarantine", "own_facts", "effective_status"
        ):
            found[item.pk] = item
    return found


def _path(nodes: Mapping[int, LineageNode], start: LineageNode, lookup: Any, source: str) -> list[int]:
    """Follow ``via`` pointers from ``start`` back to ``source``; returns ids source-first."""
    path = [start.pk]
    current = start
    for _ in range(10_000):
        entry = lookup(facts_of(current), source)
        if entry is None or entry[0] is None:
            break
        current = nodes[int(entry[0])]
        path.append(current.pk)
    return path[::-1]


def facts_of(node: LineageNode) -> dict[str, Any]:
    """A node's merged effective facts, memoised on the instance while explaining."""
    cached = getattr(node, "_merged_facts", None)
    if cached is None:
        cached = node.facts
        node._merged_facts = cached  # type: ignore[attr-defined]
    return cached


def _step(node: LineageNode) -> dict[str, Any]:
    return {"id": node.pk, "kind": node.kind, "reference": node.reference, "label": node.label}


def explain_facts(node: LineageNode) -> dict[str, Any]:
    """For each effective fact value: the sources that declare it and the path from each.

    Also a sentence per value, e.g. ``PII:PERSON via dataset_version claims-2024 v3 → model_version bot v1``.
    """
    nodes = _ancestors(node)
    nodes[node.pk] = node
    eff = node.facts

    def describe(prefix: str, value: str, table: str, key: str | None) -> list[dict[str, Any]]:
        sources = eff[table][key] if key is not None else eff[table]
        reasons = []
        for source in sorted(sources, key=int):

            def lookup(facts: Mapping[str, Any], src: str, table: str = table, key: str | None = key) -> Any:
                block = facts.get(table, {})
                block = block.get(key, {}) if key is not None else block
                return block.get(src)

            ids = _path(nodes, node, lookup, source)
            steps = [_step(nodes[item]) for item in ids]
            text = f"{prefix}{value} via " + " → ".join(f"{s['kind']} {s['label']}" for s in steps)
            reasons.append({"source": _step(nodes[int(source)]), "path": steps, "text": text})
        return reasons

    terms = eff["licence_terms"]
    licences = [
        {"value": terms[key]["id"], "terms": terms[key], "because": describe("licence:", terms[key]["id"], "licences", key)}
        for key in sorted(eff["licences"])
    ]
    explained: dict[str, Any] = {
        "pii_types": [{"value": v, "because": describe("PII:", v, "pii_types", v)} for v in sorted(eff["pii_types"])],
        "pii_scan_incomplete": [
            {"value": v, "because": describe("PII scan incomplete: data of ", v, "pii_scan_incomplete", v)}
            for v in sorted(eff.get("pii_scan_incomplete", {}))
        ],
        "owners": [{"value": v, "because": describe("owner:", v, "owners", v)} for v in sorted(eff["owners"])],
        "licences": licences,
    }
    for name, label in (("allowed_purposes", "purposes"), ("residency_regions", "regions")):
        explained[name] = [
            {"allows": [item for item in key.split(",") if item], "because": describe(f"{label} limited to ", key or "nothing", name, key)}
            for key in sorted(eff[name])
        ]
    quarantine = []
    for source in sorted(eff["quarantine"], key=int):
        cause = nodes[int(source)]
        own = cause.own_facts
        reasons = describe("quarantined: ", f"{cause.label} is {own.get('status')}", "quarantine", None)
        reasons = [r for r in reasons if r["source"]["id"] == cause.pk]
        quarantine.append({"cause": _step(cause), "status": own.get("status"), "reason": own.get("status_reason", ""), "because": reasons})
    explained["quarantine"] = quarantine
    explained["excepted"] = [
        {"cause": _step(nodes[int(source)]), "exception": item["exception"], "expires_at": item["expires_at"]}
        for source, item in sorted(eff.get("excepted", {}).items(), key=lambda pair: int(pair[0]))
    ]
    permissions = {}
    for name in ("training", "commercial_use"):
        denying = [item for item in licences if not item["terms"][name]]
        permissions[name] = {
            "value": eff["summary"]["permissions"][name],
            "denied_by": [{"licence": item["value"], "because": item["because"]} for item in denying],
        }
    explained["permissions"] = permissions
    return explained
