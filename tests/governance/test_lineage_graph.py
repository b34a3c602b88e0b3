"""The lineage graph: nodes for catalog versions, edges, cycles, upstream/downstream CTE queries."""

from __future__ import annotations

from typing import Any

import pytest

from governance.lineage import graph
from governance.lineage.services import do_record_redaction, sync_dataset_version
from governance.models import DatasetVersion, LineageEdge, LineageNode
from pedigree.errors import Conflict, InvalidInput
from tests.governance.lineage_factories import deployed, endpoint_node, model_node, trained_on

pytestmark = pytest.mark.django_db


def test_ingesting_a_version_registers_its_lineage_node(claims_dataset: Any, make_version: Any) -> None:
    version = make_version(claims_dataset)
    node = LineageNode.objects.get(kind="dataset_version", reference=str(version.pk))
    assert node.label == "claims-2024 v1"
    assert node.effective_status == "active"
    assert node.source_version == version.facts_version


def test_a_version_derived_from_another_gets_a_derived_from_edge(claims_dataset: Any, make_version: Any) -> None:
    source = make_version(claims_dataset)
    copy = DatasetVersion.objects.create(
        dataset=claims_dataset, number=2, sha256="b" * 64, size_bytes=1, record_count=1, format="jsonl",
        layout="text", storage_uri="x", licence="MIT", derived_from=source,
    )
    node = sync_dataset_version(copy)
    edge = LineageEdge.objects.get(downstream=node)
    assert (edge.upstream.reference, edge.relation) == (str(source.pk), "derived_from")


def test_model_and_endpoint_nodes_are_added_through_the_generic_interface(claims_dataset: Any, make_version: Any) -> None:
    data = graph.node_for_dataset_version(make_version(claims_dataset))
    model = trained_on(model_node("claims-bot v1"), data)
    endpoint = deployed(endpoint_node("claims-bot"), model)
    assert [r.node_id for r in graph.downstream(data)] == [model.pk, endpoint.pk]
    upstream = graph.upstream(endpoint, relations=["trained_on", "deployed_as"])
    assert [(r.node_id, r.depth) for r in upstream] == [(model.pk, 1), (data.pk, 2)]


def test_an_edge_that_would_close_a_cycle_is_refused() -> None:
    first, second, third = model_node(), model_node(), model_node()
    graph.add_edge(upstream=first, downstream=second, relation="base_model")
    graph.add_edge(upstream=second, downstream=third, relation="base_model")
    with pytest.raises(Conflict, match="cycle"):
        graph.add_edge(upstream=third, downstream=first, relation="base_model")
    assert LineageEdge.objects.count() == 2


def test_an_asset_cannot_be_its_own_upstream() -> None:
    model = model_node()
    with pytest.raises(Conflict, match="cycle"):
        graph.add_edge(upstream=model, downstream=model, relation="base_model")


def test_unknown_relations_and_kinds_are_refused() -> None:
    with pytest.raises(InvalidInput, match="relation"):
        graph.add_edge(upstream=model_node(), downstream=model_node(), relation="inspired_by")
    with pytest.raises(InvalidInput, match="kind"):
        graph.register_asset(kind="notebook", reference="1", label="x")


def test_upstream_and_downstream_respect_the_depth_limit() -> None:
    chain = [model_node(f"m{i}") for i in range(6)]
    for parent, child in zip(chain, chain[1:], strict=False):
        graph.add_edge(upstream=parent, downstream=child, relation="base_model")
    assert [r.node_id for r in graph.downstream(chain[0], max_depth=2)] == [chain[1].pk, chain[2].pk]
    assert len(graph.downstream(chain[0])) == 5
    assert [r.depth for r in graph.upstream(chain[5], max_depth=3)] == [1, 2, 3]


def test_a_node_reached_by_two_paths_is_listed_once_at_its_shortest_depth() -> None:
    base, left, right, merged = model_node(), model_node(), model_node(), model_node()
    graph.add_edge(upstream=base, downstream=left, relation="base_model")
    graph.add_edge(upstream=left, downstream=right, relation="base_model")
    graph.add_edge(upstream=right, downstream=merged, relation="base_model")
    graph.add_edge(upstream=base, downstream=merged, relation="trained_on")
    reached = graph.downstream(base)
    assert [(r.node_id, r.depth) for r in reached if r.node_id == merged.pk] == [(merged.pk, 1)]
    assert len(reached) == 3


def test_adding_the_same_edge_twice_keeps_one(claims_dataset: Any, make_version: Any) -> None:
    data = graph.node_for_dataset_version(make_version(claims_dataset))
    model = model_node()
    graph.add_edge(upstream=data, downstream=model, relation="trained_on")
    graph.add_edge(upstream=data, downstream=model, relation="trained_on")
    assert LineageEdge.objects.filter(downstream=model).count() == 1


def test_redaction_is_recorded_as_a_derived_from_edge_that_removes_pii(claims_dataset: Any, make_version: Any, alice: Any) -> None:
    source, redacted = make_version(claims_dataset), make_version(claims_dataset)
    node = do_record_redaction(actor=alice, source=source, redacted=redacted, removed_pii_types=["US_SSN"], run_id="7b0c2f4e-1111-4a1e-9d52-000000000001")
    edge = LineageEdge.objects.get(downstream=node, relation="derived_from")
    assert edge.removes_pii_types == ["US_SSN"]
    assert LineageEdge.objects.filter(downstream=node, relation="produced_by", upstream__kind="run").exists()


def test_bulk_load_refuses_a_cycle_among_new_edges() -> None:
    assets = [graph.AssetSpec("model_version", f"bulk-{i}", f"bulk {i}") for i in range(3)]
    edges = [
        graph.EdgeSpec(("model_version", "bulk-0"), ("model_version", "bulk-1"), "base_model"),
        graph.EdgeSpec(("model_version", "bulk-1"), ("model_version", "bulk-2"), "base_model"),
        graph.EdgeSpec(("model_version", "bulk-2"), ("model_version", "bulk-0"), "base_model"),
    ]
    with pytest.raises(Conflict, match="cycle"):
        graph.bulk_load(assets, edges)


def test_bulk_load_computes_effective_facts_of_what_it_loads() -> None:
    assets = [
        graph.AssetSpec("dataset_version", "ext-1", "external v1", {"pii_types": ["EMAIL_ADDRESS"], "owners": ["data"]}),
        graph.AssetSpec("model_version", "ext-model", "external model", {"owners": ["ml"]}),
    ]
    edges = [graph.EdgeSpec(("dataset_version", "ext-1"), ("model_version", "ext-model"), "trained_on")]
    result = graph.bulk_load(assets, edges)
    model = LineageNode.objects.get(pk=result.ids[("model_version", "ext-model")])
    assert model.facts["summary"]["pii_types"] == ["EMAIL_ADDRESS"]
    assert model.facts["summary"]["owners"] == ["data", "ml"]
