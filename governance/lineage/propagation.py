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

import orjson
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from governance.lineage.facts import ExceptionInput, ParentInput, changed_categories, combine
from governance.lineage.queries import EdgeRow, chunks, downstream_ids, edges_into
from governance.models.lineage import (
    PROPAGATING_RELATIONS,
    LineageGraphState,
    LineageNode,
    QuarantineException,
)

WRITE_BATCH = 1000


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
    dirty: dict[int, set[str]] = {}
    seed_set = set(seed_list)

    def current(node_id: int) -> Mapping[str, Any]:
        if node_id in computed:
            return computed[node_id]
        if node_id in nodes:
            return nodes[node_id].effective_facts
        return outside_facts[node_id]

    for node_id in _topological(members, edges):
        node = nodes[node_id]
        incoming = parents_of.get(node_id, ())
        only: set[str] | None = None
        if node_id not in seed_set and node.effective_facts:
            only = set()
            for edge in incoming:
                only |= dirty.get(edge.upstream_id, set())
            if not only:
                continue  # nothing upstream of it changed
        parents = [
            ParentInput(
                parent_id=edge.upstream_id,
                relation=edge.relation,
                removes_pii_types=edge.removes_pii_types,
                effective=current(edge.upstream_id),
            )
            for edge in incoming
        ]
        own = overrides.get(node_id, node.own_facts)
        effective = combine(
            node_id=node_id,
            kind=node.kind,
            own=own,
            parents=parents,
            exceptions=exceptions.get(node_id, ()),
            only=only,
            previous=node.effective_facts or None,
        )
        result.status_before[node_id] = node.effective_status
        if effective == node.effective_facts:
            continue
        computed[node_id] = effective
        dirty[node_id] = changed_categories(node.effective_facts, effective)
        result.changed.append(node_id)
        before, after = node.effective_status, effective["status"]
        if before != "quarantined" and after == "quarantined":
            result.quarantined.append(node_id)
        elif before == "quarantined" and after == "active":
            result.released.append(node_id)
    result.effective = computed
    if dry_run or not result.changed:
        return result
    _write(nodes, computed, result.changed)
    return result


def _write(nodes: Mapping[int, LineageNode], computed: Mapping[int, dict[str, Any]], changed: list[int]) -> None:
    """Store new effective facts and bump their fact versions, in few statements.

    PostgreSQL takes one ``UPDATE ... FROM unnest(...)`` per batch; other
    databases one prepared statement executed many times.
    """
    stamp = connection.ops.adapt_datetimefield_value(timezone.now())
    table = LineageNode._meta.db_table
    rows = [(node_id, orjson.dumps(computed[node_id]).decode(), computed[node_id]["status"]) for node_id in changed]
    with connection.cursor() as cursor:
        for start in range(0, len(rows), WRITE_BATCH):
            batch = rows[start : start + WRITE_BATCH]
            if connection.vendor == "postgresql":
                cursor.execute(
                    f"UPDATE {table} AS n SET effective_facts = v.facts::jsonb, effective_status = v.status, "
                    "facts_version = n.facts_version + 1, updated_at = %s "
                    "FROM unnest(%s::bigint[], %s::text[], %s::text[]) AS v(id, facts, status) WHERE n.id = v.id",
                    [stamp, [r[0] for r in batch], [r[1] for r in batch], [r[2] for r in batch]],
                )
            else:
                cursor.executemany(
                    f"UPDATE {table} SET effective_facts = %s, effective_status = %s, "
                    "facts_version = facts_version + 1, updated_at = %s WHERE id = %s",
                    [(facts, status, stamp, node_id) for node_id, facts, status in batch],
                )
    for node_id in changed:
        node = nodes[node_id]
        node.effective_facts = computed[node_id]
        node.effective_status = computed[node_id]["status"]
        node.facts_version += 1
