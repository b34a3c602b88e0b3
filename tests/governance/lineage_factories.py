"""Factories for lineage tests: model-version and endpoint nodes through the generic interface."""

from __future__ import annotations

import itertools
from typing import Any

from governance.lineage import graph
from governance.models import LineageNode

_counter = itertools.count(1)

APACHE = {"id": "Apache-2.0", "training": True, "commercial_use": True, "attribution": True, "share_alike": False, "holder": "Base Labs"}


def model_node(label: str | None = None, **facts: Any) -> LineageNode:
    """A model version node with its own facts given directly (as the fine-tune issue will)."""
    number = next(_counter)
    return graph.register_asset(
        kind="model_version", reference=f"test-model-{number}", label=label or f"model-{number}", facts={"owners": ["ml-platform"], **facts}
    )


def endpoint_node(label: str | None = None, **facts: Any) -> LineageNode:
    """An endpoint node."""
    number = next(_counter)
    return graph.register_asset(kind="endpoint", reference=f"test-endpoint-{number}", label=label or f"endpoint-{number}", facts=facts)


def trained_on(model: LineageNode, *datasets: LineageNode) -> LineageNode:
    for dataset in datasets:
        graph.add_edge(upstream=dataset, downstream=model, relation="trained_on")
    model.refresh_from_db()
    return model


def deployed(endpoint: LineageNode, model: LineageNode) -> LineageNode:
    graph.add_edge(upstream=model, downstream=endpoint, relation="deployed_as")
    endpoint.refresh_from_db()
    return endpoint


def fresh(node: LineageNode) -> LineageNode:
    node.refresh_from_db()
    return node
