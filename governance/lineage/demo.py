"""Demo lineage: model versions and endpoints on the demo data, so that a new user
sees a lineage picture, explained facts, a licence conflict and an impact report.

Model versions and endpoints do not exist as apps yet; their nodes go in
through the generic interface, exactly as the fine-tune and serving code will
add them. Running it again changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable

from governance.lineage import graph
from governance.models import DatasetVersion, LineageNode

BASE_LICENCE = {
    "id": "Apache-2.0", "training": True, "commercial_use": True, "attribution": True, "share_alike": False,
    "holder": "Pedigree demo authors",
}


def _version(dataset: str, *, prefer_redacted: bool = False) -> DatasetVersion | None:
    versions = DatasetVersion.objects.filter(dataset__name=dataset).order_by("-number")
    if prefer_redacted:
        redacted = versions.filter(derived_from__isnull=False).first()
        if redacted is not None:
            return redacted
    return versions.order_by("number").first()


def _model(reference: str, label: str, *, base: LineageNode | None, data: list[DatasetVersion | None]) -> LineageNode:
    node = graph.register_asset(kind="model_version", reference=reference, label=label, facts={"owners": ["ml-platform"]})
    run = graph.register_asset(kind="run", reference=f"{reference}:fine-tune", label=f"fine-tune of {label}")
    graph.add_edge(upstream=run, downstream=node, relation="produced_by")
    if base is not None:
        graph.add_edge(upstream=base, downstream=node, relation="base_model")
    for version in data:
        if version is not None:
            graph.add_edge(upstream=graph.node_for_dataset_version(version), downstream=node, relation="trained_on")
    return node


def seed_lineage(say: Callable[[str], object] = lambda text: None) -> None:
    """Add the demo base model, fine-tunes and endpoints to the lineage graph."""
    base = graph.register_asset(
        kind="model_version", reference="demo:tiny-llama-base", label="tiny-llama base",
        facts={"owners": ["ml-platform"], "licences": [BASE_LICENCE]},
    )
    support = _model(
        "demo:support-assistant-v1", "support-assistant v1", base=base,
        data=[_version("support-chats", prefer_redacted=True), _version("public-qa")],
    )
    graph.add_edge(
        upstream=support,
        downstream=graph.register_asset(kind="endpoint", reference="demo:support-assistant", label="support-assistant"),
        relation="deployed_as",
    )
    claims = _model("demo:claims-triage-v1", "claims-triage v1", base=base, data=[_version("claims-2024")])
    graph.add_edge(
        upstream=claims,
        downstream=graph.register_asset(kind="endpoint", reference="demo:claims-triage", label="claims-triage"),
        relation="deployed_as",
    )
    # Share-alike encyclopedia text with non-commercial reviews: a licence conflict to look at.
    _model("demo:research-writer-v1", "research-writer v1", base=base, data=[_version("wiki-snippets"), _version("product-reviews")])
    say("  lineage: tiny-llama base → support-assistant v1, claims-triage v1, research-writer v1; 2 endpoints\n")
