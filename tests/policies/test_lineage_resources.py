"""Model versions and endpoints recorded in the lineage graph, as the policies see them."""

from __future__ import annotations

from typing import Any

import pytest

from governance.lineage import graph
from governance.lineage.services import sync_dataset_version
from policies import decisions
from policies.facts import find_resource, resources_of_kind
from serving.models import Consumer

pytestmark = pytest.mark.django_db


@pytest.fixture
def support_bot_endpoint(claims_dataset: Any, make_version: Any) -> Any:
    """Endpoint support-bot serving model support-bot v3, trained on claims-2024 v1 (PERSON, US_SSN)."""
    version = make_version(claims_dataset, allowed_purposes=["support"], residency_regions=["us"])
    version.pii_types = ["PERSON", "US_SSN"]
    version.facts_version += 1
    version.save(update_fields=["pii_types", "facts_version"])
    data = sync_dataset_version(version)  # as the PII review does when it confirms findings
    model = graph.register_asset(kind="model_version", reference="support-bot-v3", label="support-bot v3")
    graph.add_edge(upstream=data, downstream=model, relation="trained_on")
    endpoint = graph.register_asset(kind="endpoint", reference="support-bot", label="support-bot")
    graph.add_edge(upstream=model, downstream=endpoint, relation="deployed_as")
    return endpoint


def test_a_lineage_endpoint_carries_the_effective_facts_of_its_data(support_bot_endpoint: Any) -> None:
    endpoint = find_resource("Endpoint", "support-bot")
    assert endpoint.pii_types == {"PERSON", "US_SSN"} and endpoint.regions == {"us"}
    assert endpoint.origins["pii_types:US_SSN"] == ("claims-2024 v1",)


def test_a_denial_names_the_model_the_data_and_the_missing_clearance(support_bot_endpoint: Any) -> None:
    consumer = Consumer.objects.create(name="web-frontend", purposes=["support"], region="us")
    model = find_resource("ModelVersion", "support-bot-v3")
    (decision,) = decisions.decide_many([(consumer, "endpoint.invoke", find_resource("Endpoint", "support-bot"), None)])
    assert decision.reason.startswith(
        "denied: endpoint support-bot serves a model trained on claims-2024 v1, which holds PERSON and US_SSN; "
        "consumer web-frontend is cleared for neither"
    )
    assert model.label == "model support-bot v3"


def test_simulation_lists_lineage_endpoints_beside_hypothetical_ones(support_bot_endpoint: Any) -> None:
    ids = [endpoint.id for endpoint in resources_of_kind("Endpoint")]
    assert ids == ["support-bot", "claims-2024/v1"]


def test_data_allowed_everywhere_does_not_narrow_the_regions_of_other_data(claims_dataset: Any, make_version: Any) -> None:
    eu_only = make_version(claims_dataset, allowed_purposes=["support"], residency_regions=["eu"])
    anywhere = make_version(claims_dataset, allowed_purposes=["support"], residency_regions=["global"])
    model = graph.register_asset(kind="model_version", reference="mixed-v1", label="mixed v1")
    for version in (eu_only, anywhere):
        graph.add_edge(upstream=graph.node_for_dataset_version(version), downstream=model, relation="trained_on")
    assert find_resource("ModelVersion", "mixed-v1").regions == {"eu"}
