"""Graph reads done in the database: recursive CTEs that run on SQLite and PostgreSQL.

One query walks the whole reachable set, however large, instead of one ORM
query per node. The walk goes a level at a time: each step of the recursive
CTE is one row holding the whole frontier (the distinct nodes one edge beyond
the previous frontier) as an array — a PostgreSQL ``bigint[]``, a JSON array
on SQLite — so that each step is a single index scan over every frontier node
at once (``= ANY(array)`` / ``IN json_each(...)``) rather than one
nested-loop probe per node, and the answer comes back as a few arrays rather
than a row per node. A node reached by several paths can sit in several
levels; the first level it appears in is its shortest depth, kept while the
levels are read. Measured on the benchmark graph (``benchmarks/lineage.py``)
this is about twice as fast as a row-per-(node, depth) CTE on both engines.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

import orjson
from django.db import connection

from governance.models.lineage import (
    PROPAGATING_RELATIONS,
    STATUS_BLOCKS,
    LineageEdge,
    LineageNode,
    merge_effective,
)

Direction = Literal["up", "down"]
MAX_DEPTH = 1000  # far beyond any real chain; a bound so a query can never run away
CHUNK = 5000  # ids per IN (...) list: below SQLite's variable limit

# The level-at-a-time walk, per database. Each row of ``frontier_walk`` is one
# depth and the distinct nodes one edge beyond the previous depth's nodes; an
# empty frontier (NULL on PostgreSQL, '[]' on SQLite) ends the recursion, as
# does the depth limit. Placeholders: {node_table}, {edge_table}, {near},
# {far}, {relation_clause}; parameters: the seeds, the relations, the limit.
_WALK_SQL = {
    "postgresql": """
        WITH RECURSIVE frontier_walk(depth, frontier) AS (
            SELECT 0, (SELECT array_agg(id) FROM {node_table} WHERE id = ANY(%s::bigint[]))
            UNION ALL
            SELECT w.depth + 1, (
                SELECT array_agg(DISTINCT e.{far}) FROM {edge_table} e
                WHERE e.{near} = ANY(w.frontier){relation_clause}
            )
            FROM frontier_walk w
            WHERE w.depth < %s AND w.frontier IS NOT NULL
        )
        SELECT depth, frontier FROM frontier_walk WHERE frontier IS NOT NULL ORDER BY depth
    """,
    "sqlite": """
        WITH RECURSIVE frontier_walk(depth, frontier) AS (
            SELECT 0, (SELECT json_group_array(id) FROM {node_table} WHERE id IN (SELECT value FROM json_each(%s)))
            UNION ALL
            SELECT w.depth + 1, (
                SELECT json_group_array(DISTINCT e.{far}) FROM {edge_table} e
                WHERE e.{near} IN (SELECT value FROM json_each(w.frontier)){relation_clause}
            )
            FROM frontier_walk w
            WHERE w.depth < %s AND w.frontier <> '[]'
        )
        SELECT depth, frontier FROM frontier_walk WHERE frontier <> '[]' ORDER BY depth
    """,
}


class Reached(NamedTuple):
    """A node reached by a walk, at its shortest distance from the start."""

    node_id: int
    depth: int


def walk(
    seeds: Sequence[int],
    *,
    direction: Direction,
    max_depth: int | None = None,
    relations: Iterable[str] | None = None,
    ordered: bool = False,
) -> dict[int, int]:
    """Every node reachable from ``seeds`` (included at depth 0) with its shortest depth.

    With ``ordered`` the dict comes nearest first (then by id).

    ``direction`` "down" follows edges to downstream assets, "up" to upstream
    ones; ``relations`` limits the edges followed (``None``: all).
    One recursive CTE (see the module docstring); the database returns each
    depth's frontier, and a node keeps the first depth it appears at.
    """
    if not seeds:
        return {}
    vendor = connection.vendor
    if vendor not in _WALK_SQL:
        raise NotImplementedError(f"lineage walks support PostgreSQL and SQLite, not {vendor}")
    depth_limit = MAX_DEPTH if max_depth is None else max(0, min(int(max_depth), MAX_DEPTH))
    seed_ids = [int(seed) for seed in seeds]
    near, far = ("upstream_id", "downstream_id") if direction == "down" else ("downstream_id", "upstream_id")
    params: list[Any] = [seed_ids if vendor == "postgresql" else orjson.dumps(seed_ids).decode()]
    relation_clause = ""
    if relations is not None:
        wanted = sorted(set(relations))
        relation_clause = f" AND e.relation IN ({', '.join(['%s'] * len(wanted))})" if wanted else " AND 1 = 0"
        params.extend(wanted)
    params.append(depth_limit)
    sql = _WALK_SQL[vendor].format(
        node_table=LineageNode._meta.db_table, edge_table=LineageEdge._meta.db_table,
        near=near, far=far, relation_clause=relation_clause,
    )
    found: dict[int, int] = {}
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        for depth, frontier in cursor.fetchall():
            ids = frontier if vendor == "postgresql" else orjson.loads(frontier)
            new = set(ids).difference(found)  # reached before: at a smaller depth
            found.update(dict.fromkeys(sorted(new) if ordered else new, int(depth)))
    return found


def walk_ordered(
    start: int, *, direction: Direction, max_depth: int, relations: Iterable[str] | None = None
) -> list[Reached]:
    """``walk`` from one node, without the node itself, nearest first (ties by id)."""
    found = walk([start], direction=direction, max_depth=max_depth, relations=relations, ordered=True)
    return [Reached(node_id, depth) for node_id, depth in found.items() if node_id != start]


def downstream_ids(seeds: Sequence[int], *, propagating_only: bool = False, max_depth: int | None = None) -> dict[int, int]:
    """Downstream of ``seeds``; with ``propagating_only``, only along edges that carry facts."""
    return walk(seeds, direction="down", max_depth=max_depth, relations=PROPAGATING_RELATIONS if propagating_only else None)


def chunks(ids: Iterable[int], size: int = CHUNK) -> Iterator[list[int]]:
    """Split ids into lists small enough for one ``IN (...)``."""
    batch: list[int] = []
    for item in ids:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


@dataclass(frozen=True)
class EdgeRow:
    """An edge as the propagation and the reports read it."""

    id: int
    upstream_id: int
    downstream_id: int
    relation: str
    removes_pii_types: tuple[str, ...]


def _edges(column: str, node_ids: Iterable[int]) -> list[EdgeRow]:
    table = LineageEdge._meta.db_table
    rows: list[EdgeRow] = []
    with connection.cursor() as cursor:
        for batch in chunks(node_ids):
            cursor.execute(
                f"SELECT id, upstream_id, downstream_id, relation, CAST(removes_pii_types AS TEXT) FROM {table} "
                f"WHERE {column} IN ({_inline_ids(batch)})"
            )
            for edge_id, up, down, relation, removes in cursor.fetchall():
                stops = () if not removes or removes == "[]" else tuple(orjson.loads(removes))
                rows.append(EdgeRow(int(edge_id), int(up), int(down), relation, stops))
    return rows


def edges_into(node_ids: Iterable[int]) -> list[EdgeRow]:
    """Every edge whose downstream end is one of ``node_ids``."""
    return _edges("downstream_id", node_ids)


def edges_out_of(node_ids: Iterable[int]) -> list[EdgeRow]:
    """Every edge whose upstream end is one of ``node_ids``."""
    return _edges("upstream_id", node_ids)


def shortest_paths(
    start: int, reached: Iterable[int], *, direction: Direction, relations: Iterable[str] | None = None
) -> dict[int, list[tuple[int, str]]]:
    """For each reached node, one shortest path from ``start``: [(node id, relation of the edge into it)].

    The path starts with ``(start, "")``. Breadth-first over the edges between
    reached nodes, loaded in a few batched queries; ties go to the smaller id.
    """
    members = set(reached) | {start}
    wanted = None if relations is None else set(relations)
    rows = edges_out_of(members) if direction == "down" else edges_into(members)
    neighbours: dict[int, list[tuple[int, str]]] = {}
    for row in rows:
        if wanted is not None and row.relation not in wanted:
            continue
        here, there = (row.upstream_id, row.downstream_id) if direction == "down" else (row.downstream_id, row.upstream_id)
        if there in members:
            neighbours.setdefault(here, []).append((there, row.relation))
    for items in neighbours.values():
        items.sort()
    previous: dict[int, tuple[int, str]] = {}
    seen = {start}
    queue = deque([start])
    while queue:
        here = queue.popleft()
        for there, relation in neighbours.get(here, ()):
            if there not in seen:
                seen.add(there)
                previous[there] = (here, relation)
                queue.append(there)
    paths: dict[int, list[tuple[int, str]]] = {start: [(start, "")]}
    for node in seen - {start}:
        steps: list[tuple[int, str]] = []
        cursor = node
        while cursor != start:
            parent, relation = previous[cursor]
            steps.append((cursor, relation))
            cursor = parent
        steps.append((start, ""))
        paths[node] = steps[::-1]
    return paths


@dataclass
class NodeRow:
    """A node's propagation columns, read with one raw query and a fast JSON decoder."""

    id: int
    kind: str
    own_facts: dict[str, Any]
    effective_facts: dict[str, Any]
    effective_status: str
    facts_version: int


def _inline_ids(batch: Sequence[int]) -> str:
    return ", ".join(str(int(item)) for item in batch)  # integers only: safe to inline


def _facts_sql(blocks: Sequence[str] | None) -> str:
    """SQL for the facts column as JSON text: whole, some top-level blocks, or none."""
    if blocks is None:
        return "CAST(effective_facts AS TEXT)"
    wanted = [block for block in blocks if block not in STATUS_BLOCKS]
    if not wanted:
        return "'{}'"
    for block in wanted:
        if not block.replace("_", "").isalnum():
            raise ValueError(f"bad fact block name {block!r}")
    if connection.vendor == "postgresql":
        pairs = ", ".join(f"'{block}', effective_facts -> '{block}'" for block in wanted)
        return f"CAST(jsonb_build_object({pairs}) AS TEXT)"
    pairs = ", ".join(f"'{block}', json_extract(effective_facts, '$.{block}')" for block in wanted)
    return f"json_object({pairs})"


def _decode(text: str | bytes | None) -> dict[str, Any]:
    if text is None:
        return {}
    return {key: value for key, value in orjson.loads(text).items() if value is not None}


def load_node_rows(node_ids: Iterable[int], *, blocks: Sequence[str] | None = None) -> dict[int, NodeRow]:
    """The propagation columns of these nodes (thousands at a time, without ORM overhead).

    The effective facts come merged from both columns; with ``blocks``, only
    those top-level blocks of the facts column are read (the small status
    column is always read whole).
    """
    table = LineageNode._meta.db_table
    facts = _facts_sql(blocks)
    rows: dict[int, NodeRow] = {}
    with connection.cursor() as cursor:
        for batch in chunks(node_ids):
            cursor.execute(
                f"SELECT id, kind, CAST(own_facts AS TEXT), {facts}, CAST(effective_quarantine AS TEXT), "
                f"effective_status, facts_version FROM {table} WHERE id IN ({_inline_ids(batch)})"
            )
            for node_id, kind, own, effective, status_part, status, version in cursor.fetchall():
                rows[int(node_id)] = NodeRow(
                    int(node_id), kind, orjson.loads(own), merge_effective(_decode(effective), _decode(status_part)),
                    status, int(version),
                )
    return rows


def load_effective_facts(node_ids: Iterable[int], *, blocks: Sequence[str] | None = None) -> dict[int, dict[str, Any]]:
    """The stored effective facts of these nodes (whole, or only ``blocks`` plus the status part)."""
    table = LineageNode._meta.db_table
    facts = _facts_sql(blocks)
    found: dict[int, dict[str, Any]] = {}
    with connection.cursor() as cursor:
        for batch in chunks(node_ids):
            cursor.execute(
                f"SELECT id, {facts}, CAST(effective_quarantine AS TEXT) FROM {table} WHERE id IN ({_inline_ids(batch)})"
            )
            for node_id, effective, status_part in cursor.fetchall():
                found[int(node_id)] = merge_effective(_decode(effective), _decode(status_part))
    return found
