"""Property tests: random DAGs with random facts against a brute-force recomputation."""

from __future__ import annotations

import itertools
from collections import deque
from dataclasses import dataclass
from typing import Any

import pytest
from django.db import transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from governance.lineage import graph
from governance.lineage.explain import explain_facts
from governance.lineage.facts import constraint_key
from governance.lineage.queries import downstream_ids, walk
from governance.models import LineageNode
from governance.models.lineage import PROPAGATING_RELATIONS
from pedigree.errors import Conflict

pytestmark = pytest.mark.django_db

PII = ["PERSON", "EMAIL_ADDRESS", "US_SSN"]
OWNERS = ["claims-team", "ml-platform", "research"]
PURPOSES = ["support", "research", "analytics"]
REGIONS = ["eu", "us"]
LICENCES = [
    {"id": "MIT", "training": True, "commercial_use": True, "attribution": True, "share_alike": False, "holder": "A"},
    {"id": "CC-BY-NC-4.0", "training": True, "commercial_use": False, "attribution": True, "share_alike": False, "holder": "B"},
    {"id": "CC-BY-SA-4.0", "training": True, "commercial_use": True, "attribution": True, "share_alike": True, "holder": "C"},
    {"id": "proprietary", "training": True, "commercial_use": True, "attribution": False, "share_alike": False, "holder": "D"},
]
RELATIONS = ["derived_from", "trained_on", "evaluated_on", "base_model", "deployed_as", "produced_by"]
PROPERTY_SETTINGS = settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
_serial = itertools.count()


@dataclass
class Spec:
    facts: list[dict[str, Any]]
    edges: list[tuple[int, int, str, tuple[str, ...]]]  # (upstream index, downstream index, relation, removes)


def subsets(items: list[str]) -> st.SearchStrategy[list[str]]:
    return st.lists(st.sampled_from(items), unique=True)


facts_strategy: st.SearchStrategy[dict[str, Any]] = st.fixed_dictionaries(
    {
        "status": st.sampled_from(["active", "active", "active", "revoked", "expired"]),
        "pii_types": subsets(PII),
        "owners": subsets(OWNERS),
        "licences": st.lists(st.sampled_from(LICENCES), unique_by=lambda lic: lic["id"], max_size=2),
        "allowed_purposes": st.none() | subsets(PURPOSES),
        "residency_regions": st.none() | subsets(REGIONS),
    }
)


@st.composite
def dags(draw: Any, max_nodes: int = 8, max_edges: int = 14) -> Spec:
    count = draw(st.integers(min_value=1, max_value=max_nodes))
    facts = [draw(facts_strategy) for _ in range(count)]
    pairs = [(up, down) for down in range(count) for up in range(down)]
    chosen = draw(st.lists(st.sampled_from(pairs), unique=True, max_size=min(len(pairs), max_edges))) if pairs else []
    edges = []
    for up, down in chosen:
        relation = draw(st.sampled_from(RELATIONS))
        removes: tuple[str, ...] = ()
        if relation == "derived_from":
            removes = tuple(draw(st.sampled_from([[], [], ["*"], ["PERSON"], ["US_SSN", "EMAIL_ADDRESS"]])))
        edges.append((up, down, relation, removes))
    order = draw(st.permutations(range(len(edges))))
    return Spec(facts=facts, edges=[edges[i] for i in order])


def build(spec: Spec) -> list[LineageNode]:
    """Register the nodes, then add the edges in the drawn order (exercising incremental refresh)."""
    run = next(_serial)
    nodes = [
        graph.register_asset(kind="model_version", reference=f"p{run}-{index}", label=f"n{index}", facts=facts)
        for index, facts in enumerate(spec.facts)
    ]
    for up, down, relation, removes in spec.edges:
        graph.add_edge(upstream=nodes[up], downstream=nodes[down], relation=relation, removes_pii_types=removes)
    for node in nodes:
        node.refresh_from_db()
    return nodes


def shortest(spec: Spec, source: int, target: int, *, edge_ok: Any) -> int | None:
    """Brute force: BFS over the spec's edges that carry facts and pass ``edge_ok``."""
    distance = {source: 0}
    queue = deque([source])
    while queue:
        here = queue.popleft()
        for up, down, relation, removes in spec.edges:
            if up == here and relation in PROPAGATING_RELATIONS and edge_ok(removes) and down not in distance:
                distance[down] = distance[here] + 1
                queue.append(down)
    return distance.get(target)


def passes_all(removes: tuple[str, ...]) -> bool:
    return True


def passes_pii(value: str) -> Any:
    """An edge filter: the edge passes PII type ``value`` unless it removes it (or all)."""

    def ok(removes: tuple[str, ...]) -> bool:
        return "*" not in removes and value not in removes

    return ok


def expected_sources(spec: Spec, ids: list[int], target: int) -> dict[str, Any]:
    """Every (fact, value) → {source id: distance}, recomputed from scratch."""
    result: dict[str, dict[str, dict[str, int]]] = {name: {} for name in ("pii_types", "owners", "licences", "allowed_purposes", "residency_regions")}
    quarantine: dict[str, int] = {}
    for source, facts in enumerate(spec.facts):
        for name in ("pii_types", "owners", "licences", "allowed_purposes", "residency_regions"):
            values: list[str]
            if name == "licences":
                values = [f"{lic['id']}|" + "".join("1" if lic[k] else "0" for k in ("training", "commercial_use", "attribution", "share_alike")) + f"|{lic['holder']}" for lic in facts["licences"]]
            elif name in ("allowed_purposes", "residency_regions"):
                values = [] if facts[name] is None else [constraint_key(facts[name])]
            else:
                values = facts[name]
            for value in values:
                ok = passes_pii(value) if name == "pii_types" else passes_all
                distance = shortest(spec, source, target, edge_ok=ok)
                if distance is not None:
                    result[name].setdefault(value, {})[str(ids[source])] = distance
        if facts["status"] != "active":
            distance = shortest(spec, source, target, edge_ok=passes_all)
            if distance is not None:
                quarantine[str(ids[source])] = distance
    return {**result, "quarantine": quarantine}


def stored_sources(node: LineageNode) -> dict[str, Any]:
    eff = node.facts
    out: dict[str, Any] = {
        name: {value: {src: entry[1] for src, entry in sources.items()} for value, sources in eff[name].items()}
        for name in ("pii_types", "owners", "licences", "allowed_purposes", "residency_regions")
    }
    out["quarantine"] = {src: entry[1] for src, entry in eff["quarantine"].items()}
    return out


@PROPERTY_SETTINGS
@given(spec=dags())
def test_effective_facts_equal_a_brute_force_recomputation(spec: Spec) -> None:
    with transaction.atomic():
        nodes = build(spec)
        ids = [node.pk for node in nodes]
        for index, node in enumerate(nodes):
            assert stored_sources(node) == expected_sources(spec, ids, index)
            own_status = spec.facts[index]["status"]
            expected_status = own_status if own_status != "active" else ("quarantined" if node.facts["quarantine"] else "active")
            assert node.effective_status == expected_status
        transaction.set_rollback(True)


@PROPERTY_SETTINGS
@given(spec=dags(max_nodes=6))
def test_every_explanation_path_is_a_real_shortest_path(spec: Spec) -> None:
    with transaction.atomic():
        nodes = build(spec)
        index_of = {node.pk: index for index, node in enumerate(nodes)}
        edges = {(nodes[up].pk, nodes[down].pk): removes for up, down, relation, removes in spec.edges if relation in PROPAGATING_RELATIONS}
        for node in nodes:
            explained = explain_facts(node)
            for item in explained["pii_types"]:
                for reason in item["because"]:
                    path = [step["id"] for step in reason["path"]]
                    assert path[0] == reason["source"]["id"] and path[-1] == node.pk
                    for up, down in zip(path, path[1:], strict=False):
                        removes = edges[(up, down)]
                        assert "*" not in removes and item["value"] not in removes
                    source_index = index_of[path[0]]
                    assert len(path) - 1 == shortest(spec, source_index, index_of[node.pk], edge_ok=passes_pii(item["value"]))
        transaction.set_rollback(True)


@PROPERTY_SETTINGS
@given(spec=dags(max_nodes=7), data=st.data())
def test_an_edge_is_refused_exactly_when_it_would_close_a_cycle(spec: Spec, data: Any) -> None:
    with transaction.atomic():
        nodes = build(spec)
        up = data.draw(st.integers(0, len(nodes) - 1))
        down = data.draw(st.integers(0, len(nodes) - 1))
        reachable = up == down or _reachable(spec, down, up)
        try:
            graph.add_edge(upstream=nodes[up], downstream=nodes[down], relation="base_model")
            refused = False
        except Conflict:
            refused = True
        assert refused == reachable
        transaction.set_rollback(True)


def _reachable(spec: Spec, start: int, goal: int) -> bool:
    seen, queue = {start}, deque([start])
    while queue:
        here = queue.popleft()
        for up, down, _, _ in spec.edges:
            if up == here and down not in seen:
                seen.add(down)
                queue.append(down)
    return goal in seen


@PROPERTY_SETTINGS
@given(spec=dags(), data=st.data())
def test_revocation_reaches_exactly_the_downstream_set(spec: Spec, data: Any) -> None:
    with transaction.atomic():
        nodes = build(spec)
        target = data.draw(st.integers(0, len(nodes) - 1))
        revoked = graph.register_asset(
            kind="model_version", reference=nodes[target].reference, label=nodes[target].label,
            facts={**spec.facts[target], "status": "revoked", "status_reason": "property test"},
        )
        reached = {node.pk for node in LineageNode.objects.filter(pk__in=[n.pk for n in nodes]) if str(revoked.pk) in node.facts["quarantine"]}
        brute = {nodes[i].pk for i in range(len(nodes)) if shortest(spec, target, i, edge_ok=passes_all) is not None}
        assert reached == brute == set(downstream_ids([revoked.pk], propagating_only=True))
        assert all(node.effective_status != "active" for node in LineageNode.objects.filter(pk__in=brute))
        transaction.set_rollback(True)


def brute_walk(spec: Spec, seeds: list[int], *, direction: str, max_depth: int | None, relations: list[str] | None) -> dict[int, int]:
    """Brute force: BFS from every seed at once over the spec's edges; index → shortest depth."""
    distance = dict.fromkeys(seeds, 0)
    queue = deque(seeds)
    while queue:
        here = queue.popleft()
        if max_depth is not None and distance[here] >= max_depth:
            continue
        for up, down, relation, _ in spec.edges:
            near, far = (up, down) if direction == "down" else (down, up)
            if near == here and (relations is None or relation in relations) and far not in distance:
                distance[far] = distance[here] + 1
                queue.append(far)
    return distance


@settings(PROPERTY_SETTINGS, max_examples=60)  # cheap examples: no facts to compute
@given(spec=dags(max_nodes=10, max_edges=30), data=st.data())
def test_a_walk_finds_every_reachable_node_at_its_shortest_depth_nearest_first(spec: Spec, data: Any) -> None:
    with transaction.atomic():
        run = next(_serial)
        loaded = graph.bulk_load(
            [graph.AssetSpec("model_version", f"w{run}-{index}", f"n{index}") for index in range(len(spec.facts))],
            [graph.EdgeSpec(("model_version", f"w{run}-{up}"), ("model_version", f"w{run}-{down}"), relation) for up, down, relation, _ in spec.edges],
        )
        ids = [loaded.ids[("model_version", f"w{run}-{index}")] for index in range(len(spec.facts))]
        seeds = data.draw(st.lists(st.integers(0, len(ids) - 1), min_size=1, max_size=3, unique=True))
        direction = data.draw(st.sampled_from(["down", "up"]))
        max_depth = data.draw(st.none() | st.integers(0, 3))
        relations = data.draw(st.none() | subsets(RELATIONS))
        found = walk([ids[i] for i in seeds], direction=direction, max_depth=max_depth, relations=relations, ordered=True)
        brute = brute_walk(spec, seeds, direction=direction, max_depth=max_depth, relations=relations)
        expected = sorted(((ids[index], depth) for index, depth in brute.items()), key=lambda item: (item[1], item[0]))
        assert list(found.items()) == expected
        transaction.set_rollback(True)
