"""The lineage interface: the one way into the lineage tables.

Every app registers its assets and their edges here and nothing else writes
``LineageNode`` / ``LineageEdge``. A fine-tune service, for example, does::

    from governance.lineage import graph

    model = graph.register_asset(
        kind="model_version", reference=str(model_version.pk), label="support-bot v2",
        facts={"owners": ["ml-platform"], "licences": [...]},   # its own facts only
    )
    graph.add_edge(upstream=graph.node_for_dataset_version(version), downstream=model, relation="trained_on")
    graph.add_edge(upstream=base_node, downstream=model, relation="base_model")

and reads ``governance.lineage.effective_facts(...)`` afterwards. Each write
runs in the caller's transaction (opening one if there is none), takes the
graph lock, refuses cycles, and refreshes the effective facts of everything
downstream before it returns.

Functions:

- ``register_asset`` — add or update a node and its own facts.
- ``add_edge`` / ``remove_edge`` — connect assets (redeploying an endpoint to a
  retrained model removes the old ``deployed_as`` edge and adds the new one).
- ``upstream`` / ``downstream`` — reachable assets with their depth, one
  recursive CTE each, with a depth limit.
- ``get_node`` / ``find_node`` / ``node_for_dataset_version`` — look-ups.
- ``bulk_load`` — import many nodes and edges at once (imports, benchmarks).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from django.db import connection, transaction
from django.utils import timezone

from governance.lineage.facts import ALL_PII, OwnFacts
from governance.lineage.propagation import RefreshResult, lock_graph, refresh
from governance.lineage.queries import Reached, walk, walk_ordered
from governance.models.lineage import AssetKind, EdgeRelation, LineageEdge, LineageNode
from pedigree.errors import Conflict, InvalidInput, NotFound

DEFAULT_DEPTH = 50


_KINDS = frozenset(AssetKind.values)
_RELATIONS = frozenset(EdgeRelation.values)


def _check_kind(kind: str) -> str:
    if kind not in _KINDS:
        raise InvalidInput(f"unknown asset kind {kind!r}: use {', '.join(AssetKind.values)}", field="kind")
    return kind


def _check_relation(relation: str) -> str:
    if relation not in _RELATIONS:
        raise InvalidInput(f"unknown relation {relation!r}: use {', '.join(EdgeRelation.values)}", field="relation")
    return relation


def _own_facts(facts: OwnFacts | Mapping[str, Any] | None) -> dict[str, Any]:
    if facts is None:
        return OwnFacts().as_json()
    own = facts if isinstance(facts, OwnFacts) else OwnFacts.from_json(facts)
    return own.as_json()


def register_asset(
    *,
    kind: str,
    reference: str,
    label: str,
    facts: OwnFacts | Mapping[str, Any] | None = None,
    source_version: int | None = None,
) -> LineageNode:
    """Add the asset ``(kind, reference)`` to the graph, or update its label and own facts.

    ``facts`` are the asset's own facts only (``OwnFacts`` or its JSON form);
    what it inherits is computed. Changing the facts refreshes the asset and
    everything downstream in the same transaction. Returns the stored node.
    """
    node, _ = upsert_asset(kind=kind, reference=reference, label=label, facts=facts, source_version=source_version)
    return node


def upsert_asset(
    *,
    kind: str,
    reference: str,
    label: str,
    facts: OwnFacts | Mapping[str, Any] | None = None,
    source_version: int | None = None,
) -> tuple[LineageNode, RefreshResult]:
    """``register_asset``, also returning what the refresh changed downstream (for audit rows)."""
    _check_kind(kind)
    reference = str(reference)
    if not reference or not label:
        raise InvalidInput("an asset needs a reference and a label", field="reference" if not reference else "label")
    own = _own_facts(facts)
    result = RefreshResult()
    with transaction.atomic():
        lock_graph()
        node = LineageNode.objects.select_for_update().filter(kind=kind, reference=reference).first()
        if node is None:
            node = LineageNode.objects.create(
                kind=kind,
                reference=reference,
                label=label[:255],
                own_status=own["status"],
                own_facts=own,
                source_version=source_version,
            )
            result = refresh([node.pk])
        else:
            facts_changed = node.own_facts != own
            updates: list[str] = []
            if node.label != label[:255]:
                node.label = label[:255]
                updates.append("label")
            if facts_changed:
                node.own_facts = own
                node.own_status = own["status"]
                updates += ["own_facts", "own_status"]
            if source_version is not None and node.source_version != source_version:
                node.source_version = source_version
                updates.append("source_version")
            if updates:
                node.save(update_fields=[*updates, "updated_at"])
            if facts_changed or not node.effective_facts:
                result = refresh([node.pk])
    node.refresh_from_db()
    return node, result


def add_edge(
    *,
    upstream: LineageNode,
    downstream: LineageNode,
    relation: str,
    removes_pii_types: Iterable[str] = (),
) -> LineageEdge:
    """Record that ``downstream`` ``relation`` ``upstream`` (e.g. a model trained_on a dataset version).

    ``removes_pii_types`` makes a redaction edge: those PII types (``*``: all)
    stop here. Adding an edge that exists updates its redaction list. An edge
    that would close a cycle is refused with ``Conflict``.
    """
    _check_relation(relation)
    removes = sorted({str(item) for item in removes_pii_types})
    if removes and relation != EdgeRelation.DERIVED_FROM:
        raise InvalidInput("only a derived_from edge (a redaction) can remove PII types", field="removes_pii_types")
    if upstream.pk == downstream.pk:
        raise Conflict(f"{upstream} cannot be its own {relation} upstream: that is a cycle", field="upstream")
    with transaction.atomic():
        lock_graph()
        if upstream.pk in walk([downstream.pk], direction="down"):
            raise Conflict(
                f"adding {downstream} {relation} {upstream} would close a cycle: {upstream} is already "
                f"downstream of {downstream}",
                field="upstream",
            )
        edge, created = LineageEdge.objects.get_or_create(
            upstream=upstream, downstream=downstream, relation=relation, defaults={"removes_pii_types": removes}
        )
        if not created and edge.removes_pii_types != removes:
            edge.removes_pii_types = removes
            edge.save(update_fields=["removes_pii_types"])
            created = True
        if created:
            refresh([downstream.pk])
    return edge


def remove_edge(*, upstream: LineageNode, downstream: LineageNode, relation: str) -> bool:
    """Remove an edge (e.g. an endpoint moved off a quarantined model); refreshes downstream.

    Returns whether an edge was removed.
    """
    _check_relation(relation)
    with transaction.atomic():
        lock_graph()
        deleted, _ = LineageEdge.objects.filter(upstream=upstream, downstream=downstream, relation=relation).delete()
        if deleted:
            refresh([downstream.pk])
    return bool(deleted)


def refresh_assets(node_ids: Iterable[int]) -> RefreshResult:
    """Recompute these assets and everything downstream (after exceptions change, say)."""
    with transaction.atomic():
        lock_graph()
        return refresh(node_ids)


def _reached(node: LineageNode, direction: str, max_depth: int | None, relations: Iterable[str] | None) -> list[Reached]:
    depth = DEFAULT_DEPTH if max_depth is None else max_depth
    if depth < 1:
        raise InvalidInput("depth must be at least 1", field="depth")
    return walk_ordered(node.pk, direction="down" if direction == "down" else "up", max_depth=depth, relations=relations)


def upstream(node: LineageNode, *, max_depth: int | None = None, relations: Iterable[str] | None = None) -> list[Reached]:
    """Every asset ``node`` comes from, nearest first, up to ``max_depth`` edges away (default 50)."""
    return _reached(node, "up", max_depth, relations)


def downstream(node: LineageNode, *, max_depth: int | None = None, relations: Iterable[str] | None = None) -> list[Reached]:
    """Every asset made from ``node``, nearest first, up to ``max_depth`` edges away (default 50)."""
    return _reached(node, "down", max_depth, relations)


def get_node(node_id: int) -> LineageNode:
    """The node with this id, or ``NotFound``."""
    node = LineageNode.objects.filter(pk=node_id).first()
    if node is None:
        raise NotFound(f"lineage node {node_id} does not exist", field="node")
    return node


def find_node(kind: str, reference: str) -> LineageNode:
    """The node of asset ``(kind, reference)``, or ``NotFound``."""
    node = LineageNode.objects.filter(kind=_check_kind(kind), reference=str(reference)).first()
    if node is None:
        raise NotFound(f"no {kind} {reference} in the lineage graph", field="reference")
    return node


def node_for_dataset_version(version: Any) -> LineageNode:
    """The node of a dataset version, registering it first if it is missing."""
    node = LineageNode.objects.filter(kind=AssetKind.DATASET_VERSION, reference=str(version.pk)).first()
    if node is not None:
        return node
    from governance.lineage.services import sync_dataset_version

    return sync_dataset_version(version)


@dataclass(frozen=True)
class AssetSpec:
    """One asset for ``bulk_load``."""

    kind: str
    reference: str
    label: str
    facts: OwnFacts | Mapping[str, Any] | None = None


@dataclass(frozen=True)
class EdgeSpec:
    """One edge for ``bulk_load``, naming its ends by (kind, reference)."""

    upstream: tuple[str, str]
    downstream: tuple[str, str]
    relation: str
    removes_pii_types: tuple[str, ...] = ()


@dataclass
class BulkLoadResult:
    """Ids of the loaded assets by (kind, reference), and how the refresh went."""

    ids: dict[tuple[str, str], int] = field(default_factory=dict)
    edges: int = 0


def bulk_load(assets: Sequence[AssetSpec], edges: Sequence[EdgeSpec], *, batch_size: int = 2000) -> BulkLoadResult:
    """Add many new assets and edges at once, then compute their effective facts.

    For imports of an existing lineage and for benchmarks: the assets must be
    new; an edge may come from an existing asset but must lead into a new one.
    The edges are checked for cycles as a whole before anything is written.
    """
    for asset in assets:
        _check_kind(asset.kind)
    for spec in edges:
        _check_relation(spec.relation)
        if spec.removes_pii_types and spec.relation != EdgeRelation.DERIVED_FROM:
            raise InvalidInput("only a derived_from edge (a redaction) can remove PII types", field="removes_pii_types")
        if spec.removes_pii_types and ALL_PII in spec.removes_pii_types and len(spec.removes_pii_types) > 1:
            raise InvalidInput("'*' removes every PII type; list nothing else with it", field="removes_pii_types")
    result = BulkLoadResult()
    with transaction.atomic():
        lock_graph()
        _insert_nodes(assets)
        keys = {(asset.kind, str(asset.reference)) for asset in assets} | {spec.upstream for spec in edges} | {
            spec.downstream for spec in edges
        }
        for kind in {key[0] for key in keys}:
            references = [key[1] for key in keys if key[0] == kind]
            for start in range(0, len(references), batch_size):
                for pk, reference in LineageNode.objects.filter(
                    kind=kind, reference__in=references[start : start + batch_size]
                ).values_list("pk", "reference"):
                    result.ids[(kind, reference)] = pk
        missing = keys - set(result.ids)
        if missing:
            kind, reference = sorted(missing)[0]
            raise NotFound(f"no {kind} {reference} in the lineage graph or the load", field="edges")
        new_keys = {(asset.kind, str(asset.reference)) for asset in assets}
        for spec in edges:
            if spec.downstream not in new_keys:
                raise InvalidInput(
                    f"bulk_load edges must lead into new assets; {spec.downstream} exists: use add_edge",
                    field="edges",
                )
        pairs = [(result.ids[spec.upstream], result.ids[spec.downstream]) for spec in edges]
        _refuse_cycles(pairs)
        _insert_edges(pairs, edges)
        result.edges = len(edges)
        new_ids = [result.ids[(asset.kind, str(asset.reference))] for asset in assets]
        targets = {down for _, down in pairs}
        refresh(sorted(set(new_ids) | targets))
    return result


def _json_param() -> str:
    return "CAST(%s AS jsonb)" if connection.vendor == "postgresql" else "%s"


def _insert_nodes(assets: Sequence[AssetSpec]) -> None:
    """Insert new nodes with one prepared statement (bulk_load's hot path)."""
    stamp = connection.ops.adapt_datetimefield_value(timezone.now())
    json_param = _json_param()
    sql = (
        f"INSERT INTO {LineageNode._meta.db_table} (kind, reference, label, own_status, own_facts, effective_status, "
        f"effective_facts, effective_quarantine, facts_version, created_at, updated_at) "
        f"VALUES (%s, %s, %s, %s, {json_param}, %s, {json_param}, {json_param}, 1, %s, %s)"
    )
    rows = []
    for asset in assets:
        own = _own_facts(asset.facts)
        rows.append((asset.kind, str(asset.reference), asset.label[:255], own["status"], orjson.dumps(own).decode(),
                     "active", "{}", "{}", stamp, stamp))
    with connection.cursor() as cursor:
        cursor.executemany(sql, rows)


def _insert_edges(pairs: Sequence[tuple[int, int]], edges: Sequence[EdgeSpec]) -> None:
    """Insert new edges with one prepared statement."""
    stamp = connection.ops.adapt_datetimefield_value(timezone.now())
    sql = (
        f"INSERT INTO {LineageEdge._meta.db_table} (upstream_id, downstream_id, relation, removes_pii_types, created_at) "
        f"VALUES (%s, %s, %s, {_json_param()}, %s)"
    )
    rows = [
        (up, down, spec.relation, orjson.dumps(sorted(spec.removes_pii_types)).decode(), stamp)
        for (up, down), spec in zip(pairs, edges, strict=True)
    ]
    with connection.cursor() as cursor:
        cursor.executemany(sql, rows)


def _refuse_cycles(pairs: Sequence[tuple[int, int]]) -> None:
    """Raise ``Conflict`` if the new edges hold a cycle.

    ``bulk_load`` only adds edges into new assets, so a cycle can only run
    through new edges: checking them alone is enough.
    """
    nodes = {node for pair in pairs for node in pair}
    indegree = dict.fromkeys(nodes, 0)
    children: dict[int, list[int]] = {}
    for up, down in pairs:
        if up == down:
            raise Conflict(f"lineage node {up} cannot be its own upstream", field="edges")
        indegree[down] += 1
        children.setdefault(up, []).append(down)
    queue = deque(node for node, count in indegree.items() if count == 0)
    seen = 0
    while queue:
        node = queue.popleft()
        seen += 1
        for child in children.get(node, ()):
            indegree[child] -= 1
            if indegree[child] == 0:
                queue.append(child)
    if seen != len(nodes):
        raise Conflict("the edges to load contain a cycle", field="edges")
