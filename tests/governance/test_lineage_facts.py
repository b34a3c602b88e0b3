"""Effective facts: DESIGN.md's combination rules, explanations, redaction, refresh on change."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import transaction
from django.db.models import F

from governance.lineage import effective_facts, graph
from governance.lineage.services import (
    do_record_redaction,
    on_dataset_version_changed,
    sync_stale_dataset_versions,
)
from governance.models import LineageNode
from governance.services import do_update_version_governance
from tests.governance.lineage_factories import APACHE, fresh, model_node, trained_on

pytestmark = pytest.mark.django_db


def _confirm_pii(version: Any, *types: str, hook: bool = True) -> None:
    """What the PII review does: set the confirmed types and bump the facts version."""
    with transaction.atomic():
        version.pii_types = list(types)
        version.facts_version = F("facts_version") + 1
        version.save(update_fields=["pii_types", "facts_version"])
        if hook:
            on_dataset_version_changed(version, actor=None, reason="PII confirmed")
    version.refresh_from_db()


@pytest.fixture
def two_datasets(claims_dataset: Any, make_version: Any) -> tuple[Any, Any]:
    first = make_version(claims_dataset, allowed_purposes=["support", "analytics"], residency_regions=["eu", "us"])
    second = make_version(
        claims_dataset, licence="CC-BY-NC-4.0", copyright_holder="Review authors",
        allowed_purposes=["support", "research"], residency_regions=["eu"],
    )
    _confirm_pii(first, "PERSON")
    _confirm_pii(second, "EMAIL_ADDRESS")
    return first, second


def _model_on(*versions: Any, **facts: Any) -> LineageNode:
    return trained_on(model_node(**facts), *[graph.node_for_dataset_version(v) for v in versions])


def test_pii_types_are_the_union_over_upstream(two_datasets: Any) -> None:
    facts = effective_facts(node=_model_on(*two_datasets))
    assert facts.pii_types == {"PERSON", "EMAIL_ADDRESS"}


def test_each_pii_type_explains_itself_with_its_path(two_datasets: Any) -> None:
    model = _model_on(*two_datasets, label="claims-bot v1")
    explained = effective_facts(node=model, explain=True).explanations
    assert explained is not None
    person = next(item for item in explained["pii_types"] if item["value"] == "PERSON")
    assert person["because"][0]["text"] == "PII:PERSON via dataset_version claims-2024 v1 → model_version claims-bot v1"
    assert [step["label"] for step in person["because"][0]["path"]] == ["claims-2024 v1", "claims-bot v1"]


def test_allowed_purposes_and_residency_are_intersections(two_datasets: Any) -> None:
    facts = effective_facts(node=_model_on(*two_datasets))
    assert facts.allowed_purposes == {"support"}
    assert facts.residency_regions == {"eu"}


def test_a_model_with_no_data_has_unrestricted_purposes() -> None:
    assert effective_facts(node=model_node()).allowed_purposes is None


def test_owners_are_the_union_over_upstream(two_datasets: Any) -> None:
    facts = effective_facts(node=_model_on(*two_datasets))
    assert facts.owners == {"claims-team", "ml-platform"}


def test_permissions_are_the_most_restrictive_of_all_licences(two_datasets: Any) -> None:
    facts = effective_facts(node=_model_on(*two_datasets, licences=[APACHE]))
    assert facts.licences == {"MIT", "CC-BY-NC-4.0", "Apache-2.0"}
    assert facts.permissions == {"training": True, "commercial_use": False, "attribution": True, "share_alike": False}


def test_obligations_name_whom_to_credit_and_what_is_non_commercial(two_datasets: Any) -> None:
    facts = effective_facts(node=_model_on(*two_datasets, licences=[APACHE]))
    assert {"licence": "Apache-2.0", "credit": "Base Labs"} in facts.obligations["attribution"]
    assert {"licence": "CC-BY-NC-4.0", "credit": "Review authors"} in facts.obligations["attribution"]
    assert facts.obligations["non_commercial"] == ["CC-BY-NC-4.0"]


def test_the_licence_that_denies_commercial_use_is_explained(two_datasets: Any) -> None:
    explained = effective_facts(node=_model_on(*two_datasets), explain=True).explanations
    assert explained is not None
    denied = explained["permissions"]["commercial_use"]
    assert denied["value"] is False
    assert [item["licence"] for item in denied["denied_by"]] == ["CC-BY-NC-4.0"]


def test_share_alike_data_mixed_with_proprietary_data_is_a_conflict(claims_dataset: Any, make_version: Any) -> None:
    wiki = make_version(claims_dataset, licence="CC-BY-SA-4.0")
    internal = make_version(claims_dataset, licence="proprietary", licence_text="Acme internal")
    conflicts = effective_facts(node=_model_on(wiki, internal)).conflicts
    assert [(c["code"], c["licences"]) for c in conflicts] == [("share_alike", ["CC-BY-SA-4.0", "proprietary"])]


def test_training_on_a_no_derivatives_licence_is_a_conflict(claims_dataset: Any, make_version: Any) -> None:
    nd = make_version(claims_dataset, licence="CC-BY-ND-4.0")
    facts = effective_facts(node=_model_on(nd))
    assert facts.permissions["training"] is False
    assert [c["code"] for c in facts.conflicts] == ["no_training"]


def test_a_redaction_edge_stops_the_pii_it_removed(claims_dataset: Any, make_version: Any, alice: Any) -> None:
    source, redacted = make_version(claims_dataset), make_version(claims_dataset)
    _confirm_pii(source, "PERSON", "US_SSN")
    do_record_redaction(actor=alice, source=source, redacted=redacted, removed_pii_types=["US_SSN"])
    facts = effective_facts(node=_model_on(redacted))
    assert facts.pii_types == {"PERSON"}


def test_a_redaction_edge_still_passes_licences_and_restrictions(claims_dataset: Any, make_version: Any, alice: Any) -> None:
    source = make_version(claims_dataset, licence="CC-BY-NC-4.0", allowed_purposes=["research"])
    redacted = make_version(claims_dataset, allowed_purposes=["research", "support"])
    _confirm_pii(source, "PERSON")
    do_record_redaction(actor=alice, source=source, redacted=redacted, removed_pii_types=["*"])
    facts = effective_facts(node=graph.node_for_dataset_version(redacted))
    assert (facts.pii_types, facts.allowed_purposes) == (frozenset(), {"research"})
    assert "CC-BY-NC-4.0" in facts.licences


def test_confirming_pii_upstream_refreshes_the_models_downstream(claims_dataset: Any, make_version: Any) -> None:
    version = make_version(claims_dataset)
    model = _model_on(version)
    before = fresh(model).facts_version
    _confirm_pii(version, "PHONE_NUMBER")
    facts = effective_facts(node=fresh(model))
    assert facts.pii_types == {"PHONE_NUMBER"}
    assert facts.facts_version == before + 1


def test_correcting_a_licence_refreshes_the_models_downstream(claims_dataset: Any, make_version: Any, alice: Any) -> None:
    version = make_version(claims_dataset)
    model = _model_on(version)
    do_update_version_governance(actor=alice, version=version, changes={"licence": "CC-BY-NC-4.0"}, reason="licence was wrong")
    assert effective_facts(node=fresh(model)).licences == {"CC-BY-NC-4.0"}


def test_an_unchanged_refresh_keeps_the_facts_version(claims_dataset: Any, make_version: Any, alice: Any) -> None:
    version = make_version(claims_dataset)
    model = _model_on(version)
    before = fresh(model).facts_version
    do_update_version_governance(actor=alice, version=version, changes={"notes": "checked"}, reason="note")
    assert fresh(model).facts_version == before


def test_a_fact_change_that_missed_its_hook_is_caught_by_the_hourly_resync(claims_dataset: Any, make_version: Any) -> None:
    version = make_version(claims_dataset)
    model = _model_on(version)
    _confirm_pii(version, "PERSON", hook=False)
    assert sync_stale_dataset_versions() == [version.pk]
    assert effective_facts(node=fresh(model)).pii_types == {"PERSON"}


def test_reading_a_stale_dataset_version_resyncs_it_first(claims_dataset: Any, make_version: Any) -> None:
    version = make_version(claims_dataset)
    _confirm_pii(version, "PERSON", hook=False)
    assert effective_facts("dataset_version", str(version.pk)).pii_types == {"PERSON"}


def test_moving_a_dataset_to_another_team_changes_the_owners_downstream(
    claims_dataset: Any, make_version: Any, root: Any, support_team: Any, mallory: Any
) -> None:
    from governance.services import do_update_dataset

    model = _model_on(make_version(claims_dataset))
    do_update_dataset(
        actor=root, dataset=claims_dataset, changes={"owner_group": support_team, "steward": mallory}, reason="team reorganised"
    )
    assert effective_facts(node=fresh(model)).owners == {"support-team", "ml-platform"}


def test_global_residency_does_not_narrow_the_intersection(claims_dataset: Any, make_version: Any) -> None:
    eu_only = make_version(claims_dataset, residency_regions=["eu"])
    anywhere = make_version(claims_dataset, residency_regions=["global"])
    assert effective_facts(node=_model_on(eu_only, anywhere)).residency_regions == {"eu"}
    assert effective_facts(node=_model_on(anywhere)).residency_regions == {"global"}
