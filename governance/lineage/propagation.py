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

from governance.lineage.facts import (
    CATEGORIES,
    ExceptionInput,
    ParentInput,
    category_blocks,
    changed_categories,
    combine,
)
from governance.lineage.queries import (
    EdgeRow,
    NodeRow,
    downstream_ids,
    edges_into,
    load_effective_facts,
    load_node_rows,
)
from governance.models.lineage import (
    PROPAGATING_RELATIONS,
    STATUS_BLOCKS,
    LineageGraphState,
    LineageNode,
    QuarantineException,
    split_effective,
)

WRITE_BATCH = 1000


def lock_graph() -> LineageGraphState:
    """Lock the graph for the rest of the transaction and count one more change.

    Must run inside a transaction; every writer calls it first. The graph row
    is the first of the two global locks (see ``lock_for_governed_write`` in
    ``governance.models.audit`` for the order).
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
    # Exceptions in force are few: read them all and keep those of these nodes.
    wanted = set(node_ids)
    found: dict[int, list[ExceptionInput]] = {}
    for exc_id, node_id, cause_id, expires_at in QuarantineException.objects.filter(
        withdrawn_at__isnull=True, expires_at__gt=now
    ).values_list("id", "node_id", "cause_id", "expires_at"):
        if node_id in wanted:
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

    First the seeds are recomputed against their stored parents, which bounds
    the fact categories that can change anywhere downstream (a revocation:
    only the quarantine). When that is not every category, the downstream
    nodes are read and written as those blocks alone (JSON paths in SQL), so
    a revocation reaching thousands of models moves kilobytes per model, not
    their whole explained facts. ``RefreshResult.effective`` then holds those
    blocks (always ``status``, ``quarantine`` when it changed, and ``summary``).
    """
    now = now or timezone.now()
    overrides = own_overrides or {}
    seed_list = sorted(set(seeds))
    result = RefreshResult()
    if not seed_list:
        return result
    seed_set = set(seed_list)
    members = set(downstream_ids(seed_list, propagating_only=True))
    result.affected = sorted(members)
    edges = [edge for edge in edges_into(members) if edge.relation in PROPAGATING_RELATIONS]
    exceptions = active_exceptions(members, now=now)
    parents_of: dict[int, list[EdgeRow]] = {}
    for edge in edges:
        parents_of.setdefault(edge.downstream_id, []).append(edge)

    # The seeds, in full, against their stored parents: what can change downstream?
    seed_rows = load_node_rows(seed_list)
    seed_parents = {edge.upstream_id for edge in edges if edge.downstream_id in seed_set} - seed_set
    parent_facts = load_effective_facts(sorted(seed_parents))
    bound: set[str] = set()
    for node_id in seed_list:
        row = seed_rows[node_id]
        if not row.effective_facts:
            bound = set(CATEGORIES)
            break
        trial = combine(
            node_id=node_id, kind=row.kind, own=overrides.get(node_id, row.own_facts),
            parents=[
                ParentInput(edge.upstream_id, edge.relation, edge.removes_pii_types,
                            parent_facts.get(edge.upstream_id) or seed_rows[edge.upstream_id].effective_facts)
                for edge in parents_of.get(node_id, ())
            ],
            exceptions=exceptions.get(node_id, ()),
        )
        bound |= changed_categories(row.effective_facts, trial)
    partial = bound != set(CATEGORIES) and len(members) > len(seed_set)
    blocks = sorted(
        {block for category in bound for block in category_blocks(category)}
        | set(STATUS_BLOCKS)
        | ({"summary"} if bound - {"quarantine"} else set())
    )
    others = sorted(members - seed_set)
    nodes: dict[int, NodeRow] = dict(seed_rows)
    nodes.update(load_node_rows(others, blocks=blocks if partial else None))
    outside = sorted({edge.upstream_id for edge in edges} - members - seed_parents)
    outside_facts = load_effective_facts(outside, blocks=blocks if partial else None)
    outside_facts.update(parent_facts)
    if partial and any("status_summary" not in nodes[n].effective_facts for n in others):
        partial = False  # a node never computed: read everything
        nodes.update(load_node_rows(others))
        outside_facts.update(load_effective_facts(outside))

    computed: dict[int, dict[str, Any]] = {}
    dirty: dict[int, set[str]] = {}

    def stored(node_id: int) -> Mapping[str, Any]:
        return nodes[node_id].effective_facts if node_id in nodes else outside_facts[node_id]

    def current(node_id: int) -> Mapping[str, Any]:
        if node_id not in computed:
            return stored(node_id)
        if node_id in seed_set or not partial:
            return computed[node_id]
        return {**stored(node_id), **computed[node_id]}  # full stored blocks under the new ones

    watched = blocks if partial else None
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
            ParentInput(edge.upstream_id, edge.relation, edge.removes_pii_types, current(edge.upstream_id))
            for edge in incoming
        ]
        effective = combine(
            node_id=node_id,
            kind=node.kind,
            own=overrides.get(node_id, node.own_facts),
            parents=parents,
            exceptions=exceptions.get(node_id, ()),
            only=only,
            previous=node.effective_facts or None,
        )
        if watched is not None and node_id not in seed_set:
            effective = {block: effective[block] for block in watched}
        result.status_before[node_id] = node.effective_status
        if all(effective.get(key) == node.effective_facts.get(key) for key in (watched or ())) if (
            watched is not None and node_id not in seed_set
        ) else effective == node.effective_facts:
            continue
        computed[node_id] = effective
        dirty[node_id] = changed_categories(node.effective_facts, effective) & (bound if partial else set(CATEGORIES))
        result.changed.append(node_id)
        before, after = node.effective_status, effective["status"]
        if before != "quarantined" and after == "quarantined":
            result.quarantined.append(node_id)
        elif before == "quarantined" and after == "active":
            result.released.append(node_id)
    result.effective = computed
    if dry_run or not result.changed:
        return result
    whole = [node_id for node_id in result.changed if node_id in seed_set or not partial]
    whole_set = set(whole)
    _write(nodes, computed, whole, blocks=None)
    _write(nodes, computed, [node_id for node_id in result.changed if node_id not in whole_set], blocks=blocks)
    return result


def _write(
    nodes: Mapping[int, NodeRow], computed: Mapping[int, dict[str, Any]], changed: list[int], *, blocks: list[str] | None
) -> None:
    """Store new effective facts and bump their fact versions, in few statements.

    The status part goes to its own small column, always whole. The facts
    column is replaced whole (``blocks`` None), patched with the changed
    blocks, or not touched at all (a revocation). PostgreSQL takes one
    ``UPDATE ... FROM jsonb_to_recordset(...)`` per batch; SQLite one prepared
    statement executed many times.
    """
    if not changed:
        return
    stamp = connection.ops.adapt_datetimefield_value(timezone.now())
    table = LineageNode._meta.db_table
    fact_blocks = None if blocks is None else [block for block in blocks if block not in STATUS_BLOCKS]
    rows = []
    for node_id in changed:
        facts, status_part = split_effective(computed[node_id])
        rows.append({"id": node_id, "facts": facts, "quarantine": status_part, "status": computed[node_id]["status"]})
    postgres = connection.vendor == "postgresql"
    if fact_blocks is None:
        facts_sql = "v.facts" if postgres else "json(%s)"
    elif not fact_blocks:
        facts_sql = ""
    elif postgres:
        facts_sql = "n.effective_facts || v.facts"
    else:
        facts_sql = "json_set(effective_facts, " + ", ".join(
            f"'$.{block}', json_extract(%s, '$.{block}')" for block in fact_blocks
        ) + ")"
    facts_assignment = f"effective_facts = {facts_sql}, " if facts_sql else ""
    with connection.cursor() as cursor:
        for start in range(0, len(rows), WRITE_BATCH):
            batch = rows[start : start + WRITE_BATCH]
            if postgres:
                cursor.execute(
                    f"UPDATE {table} AS n SET {facts_assignment}effective_quarantine = v.quarantine, "
                    "effective_status = v.status, facts_version = n.facts_version + 1, updated_at = %s "
                    "FROM jsonb_to_recordset(CAST(%s AS jsonb)) AS v(id bigint, facts jsonb, quarantine jsonb, status text) "
                    "WHERE n.id = v.id",
                    [stamp, orjson.dumps(batch).decode()],
                )
            else:
                repeat = 0 if not facts_sql else 1 if fact_blocks is None else len(fact_blocks)
                cursor.executemany(
                    f"UPDATE {table} SET {facts_assignment}effective_quarantine = json(%s), effective_status = %s, "
                    "facts_version = facts_version + 1, updated_at = %s WHERE id = %s",
                    [
                        (*([orjson.dumps(row["facts"]).decode()] * repeat), orjson.dumps(row["quarantine"]).decode(),
                         row["status"], stamp, row["id"])
                        for row in batch
                    ],
                )
    for node_id in changed:
        node = nodes[node_id]
        node.effective_facts = {**node.effective_facts, **computed[node_id]}
        node.effective_status = computed[node_id]["status"]
        node.facts_version += 1
