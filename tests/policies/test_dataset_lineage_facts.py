"""Decisions on dataset versions read their lineage effective facts."""

from __future__ import annotations

import pytest

from governance.lineage.graph import add_edge, node_for_dataset_version
from governance.services import do_revoke_dataset_version, do_update_version_governance
from policies.decisions import decide
from policies.facts import facts_for_dataset_version

pytestmark = pytest.mark.django_db


def derive(original, copy):
    add_edge(upstream=node_for_dataset_version(original), downstream=node_for_dataset_version(copy), relation="derived_from")


def test_a_derived_version_carries_its_upstream_licences(claims_dataset, make_version):
    original = make_version(claims_dataset, licence="CC-BY-NC-4.0")
    copy = make_version(claims_dataset, licence="MIT")
    derive(original, copy)
    facts = facts_for_dataset_version(copy)
    assert facts.licences == {"CC-BY-NC-4.0", "MIT"}
    assert facts.permissions["commercial_use"] is False


def test_revoking_the_original_denies_reading_the_derived_copy(claims_dataset, make_version, alice):
    original = make_version(claims_dataset)
    copy = make_version(claims_dataset)
    derive(original, copy)
    assert decide(alice, "dataset.read", copy).allowed
    do_revoke_dataset_version(actor=alice, version=original, reason="consent withdrawn")
    decision = decide(alice, "dataset.read", copy)
    assert not decision.allowed and "quarantine" in decision.policies


def test_a_governance_change_upstream_changes_the_cache_key(claims_dataset, make_version, alice):
    original = make_version(claims_dataset)
    copy = make_version(claims_dataset)
    derive(original, copy)
    before = facts_for_dataset_version(copy).facts_version
    do_update_version_governance(actor=alice, version=original, changes={"licence": "CC-BY-SA-4.0"}, reason="correction")
    after = facts_for_dataset_version(copy)
    assert after.facts_version != before and "CC-BY-SA-4.0" in after.licences
