"""Bringing stored effective facts up to date after a change upstream.

``refresh(seeds)`` recomputes the seeds and everything downstream of them
along fact-carrying edges, in topological order, from the stored effective
facts of the parents outside that set. It runs inside the caller's
transaction (the change and its consequences commit together) and under the
graph lock, and writes only the nodes whose effective facts changed, bumping
their ``facts_version``. ``dry_run`` computes the same result without writing:
the impact preview uses it to show what a revocation would do.
"""

from __future__ import annotations

import datetime as dt
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from governance.lineage.facts import ExceptionInput, ParentInput, combine
from governance.lineage.queries import EdgeRow, chunks, downstream_ids, edges_into
from governance.models.lineage import (
    PROPAGATING_RELATIONS,
    LineageGraphState,
    LineageNode,
    QuarantineException,
)

WRITE_BATCH = 500


def lock_graph() -> LineageGraphState:
    """Lock the graph for the rest of the transaction and count one more change.

    Must run inside a transaction; every writer calls it first.
    """
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("lineage graph writes must run inside a transaction")
    state, _ = LineageGraphState.objects.select_for_update().get_or_create(pk=1)
    LineageGraphState.objects.filter(pk=1).update(graph_version=F("graph_version") + 1)
    return state


@dataclass
class RefreshResult:
    """What a refresh changed (or, in a dry run, would change).

    ``quarantined``: nodes that became quarantined; ``released``: nodes that
    were quarantined and are active again.
    """

    affected: list[int] = field(default_factory=list)
    changed: list[int] = field(default_factory=list)
    quarantined: list[int] = field(default_factory=list)
    released: list[int] = field(default_factory=list)
    status_before: dict[int, str] = field(default_factory=dict)
    effective: dict[int, dict[str, Any]] = field(default_factory=dict)


def active_exceptions(node_ids: Iterable[int], *, now: dt.datetime) -> dict[int, list[ExceptionInput]]:
    """Exceptions in force at ``now`` for these nodes, by node."""
    found: dict[int, list[ExceptionInput]] = {}
    for batch in chunks(node_ids):
        for exc_id, node_id, cause_id, expires_at in QuarantineException.objects.filter(
            node_id__in=batch, withdrawn_at__isnull=True, expires_at__gt=now
        ).values_list("id", "node_id", "cause_id", "expires_at"):
            found.setdefault(node_id, []).append(ExceptionInput(exc_id, cause_id, expires_at))
    return found


def _topological(members: set[int], edges: list[EdgeRow]) -> list[int]:
    indegree = dict.fromkeys(members, 0)
    children: dict[int, list[int]] = {}
    for edge in edges:
        if edge.upstream_id in members and edge.relation in PROPAGATING_RELATIONS:
            indegree[edge.downstream_id] += 1
            children.setdefault(edge.upstream_id, []).append(edge.downstream_id)
    queue = deque(sorted(node for node, count in indegree.items() if count == 0))
    order: list[int] = []
    while queue:
        node = queue.popleft()
        order.append(node)
        for child in children.get(node, ()):
            indegree[child] -= 1
            if indegree[child] == 0:
                queue.append(child)
    if len(order) != len(members):
        raise RuntimeError("the lineage graph has a cycle; add_edge should have refused it")
    return order


def refresh(
    seeds: Iterable[int],
    *,
    dry_run: bool = False,
    own_overrides: Mapping[int, Mapping[str, Any]] | None = None,
    now: dt.datetime | None = None,
) -> RefreshResult:
    """Recompute the effective facts of ``seeds`` and everything downstream of them.

    ``own_overrides`` replaces some nodes' own facts for this computation only
    (with ``dry_run``: "what if this version were revoked?").
    """
    now = now or timezone.now()
    overrides = own_overrides or {}
    seed_list = sorted(set(seeds))
    result = RefreshResult()
    if not seed_list:
        return result
    reached = downstream_ids(seed_list, propagating_only=True)
    members = set(reached)
    result.affected = sorted(members)

    nodes: dict[int, LineageNode] = {}
    for batch in chunks(sorted(members)):
        for node in LineageNode.objects.filter(id__in=batch).only(
            "id", "kind", "own_facts", "effective_facts", "effective_status", "facts_version"
        ):
            nodes[node.pk] = node
    edges = [edge for edge in edges_into(members) if edge.relation in PROPAGATING_RELATIONS]
    outside = sorted({edge.upstream_id for edge in edges} - members)
    outside_facts: dict[int, dict[str, Any]] = {}
    for batch in chunks(outside):
        outside_facts.update(LineageNode.objects.filter(id__in=batch).values_list("id", "effective_facts"))
    exceptions = active_exceptions(members, now=now)
    parents_of: dict[int, list[EdgeRow]] = {}
    for edge in edges:
        parents_of.setdefault(edge.downstream_id, []).append(edge)

    computed: dict[int, dict[str, Any]] = {}
    for node_id in _topological(members, edges):
        node = nodes[node_id]
        parents = [
            ParentInput(
                parent_id=edge.upstream_id,
                relation=edge.relation,
                removes_pii_types=edge.removes_pii_types,
                effective=computed[edge.upstream_id] if edge.upstream_id in computed else outside_facts[edge.upstream_id],
            )
            for edge in parents_of.get(node_id, ())
        ]
        own = overrides.get(node_id, node.own_facts)
        effective = combine(
            node_id=node_id, kind=node.kind, own=own, parents=parents, exceptions=exceptions.get(node_id, ())
        )
        computed[node_id] = effective
        result.status_before[node_id] = node.effective_status
        if effective != node.effective_facts:
            result.changed.append(node_id)
            before, after = node.effective_status, effective["status"]
            if before != "quarantined" and after == "quarantined":
                result.quarantined.append(node_id)
            elif before == "quarantined" and after == "active":
                result.released.append(node_id)
    result.effective = computed
    if dry_run or not result.changed:
        return result

    stamp = timezone.now()
    to_write = []
    for node_id in result.changed:
        node = nodes[node_id]
        node.effective_facts = computed[node_id]
        node.effective_status = computed[node_id]["status"]
        node.facts_version = node.facts_version + 1
        node.updated_at = stamp
        to_write.append(node)
    LineageNode.objects.bulk_update(
        to_write, ["effective_facts", "effective_status", "facts_version", "updated_at"], batch_size=WRITE_BATCH
    )
    return result
