"""The demo that ``make run`` seeds decides what the README says it decides.

``seed_demo`` scans the demo data with real Presidio and seeds the stewards'
reviews; these tests seed it and ask the real policies the README's
questions, so a change to the demo data, the reviews, the consumers, the
scanner or the policies that changes an answer the README shows fails here.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.test import TestCase, override_settings

from governance.models import AuditEvent, DatasetVersion
from governance.models.pii import PiiEntityReview, PiiScan
from pedigree import storage
from policies.decisions import decide_many
from policies.facts import find_resource
from policies.requests import Decision
from serving.models import Consumer
from tests.conftest import api_client_for

pytestmark = [pytest.mark.django_db, pytest.mark.slow]

README = Path(__file__).resolve().parent.parent / "README.md"
SECTION = "## Try the fail-closed rules"

# (consumer, endpoint) -> the policies that deny it (empty: allowed), as seeded.
SEEDED_DECISIONS: dict[tuple[str, str], set[str]] = {
    ("claims-fraud-us", "demo:claims-triage"): set(),
    ("helpdesk-eu", "demo:support-assistant"): {"pii-clearance"},  # only the unreviewed UK_NHS
    ("web-frontend", "demo:support-assistant"): {"pii-clearance", "residency"},
    ("helpdesk-eu", "demo:claims-triage"): {"pii-clearance", "purpose-limitation", "residency"},
    ("research-notebook", "demo:support-assistant"): {"pii-clearance", "purpose-limitation"},
}


def _readme_section() -> str:
    text = README.read_text()
    start = text.index(SECTION)
    end = text.index("\n## ", start + len(SECTION))
    return text[start:end]


def _readme_table() -> dict[tuple[str, str], str]:
    """The section's table: (consumer, endpoint) -> allow or deny."""
    rows = {}
    for line in _readme_section().splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 4 and cells[2] in ("allow", "deny"):
            rows[(cells[0], cells[1])] = cells[2]
    return rows


def _readme_json(pattern: str) -> dict[str, Any]:
    """A JSON body the section's curl commands send (the text in single quotes)."""
    match = re.search(pattern, _readme_section())
    assert match, f"README section {SECTION!r} has no {pattern!r}"
    body: dict[str, Any] = json.loads(match.group(1))
    return body


def _seed() -> None:
    call_command("seed_demo", stdout=io.StringIO())


@pytest.fixture(scope="module")
def seeded_demo(django_db_setup: Any, django_db_blocker: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The demo, seeded once for this module (scanning it with Presidio takes a
    while), inside a transaction rolled back when the module is done; each test
    runs in its own savepoint within it, as in a Django TestCase class."""
    var = tmp_path_factory.mktemp("demo-var")
    with django_db_blocker.unblock(), override_settings(VAR_DIR=var, PEDIGREE_ARTIFACTS=str(var / "artifacts")):
        storage._cached_store.cache_clear()  # the store of this module's artifacts folder
        # What a Django TestCase class does around its tests (private in the stubs).
        atomics = TestCase._enter_atomics()  # type: ignore[attr-defined]
        try:
            _seed()
            yield
        finally:
            TestCase._rollback_atomics(atomics)  # type: ignore[attr-defined]


def _decision(consumer: str, endpoint: str) -> Decision:
    (decision,) = decide_many(
        [(Consumer.objects.get(name=consumer), "endpoint.invoke", find_resource("Endpoint", endpoint), {})], log=False
    )
    return decision


def test_the_readme_table_lists_the_pairs_this_test_checks():
    expected = {pair: "deny" if denied_by else "allow" for pair, denied_by in SEEDED_DECISIONS.items()}
    assert _readme_table() == expected


def test_seeded_demo_allows_and_denies_the_pairs_the_readme_claims_for_those_reasons(seeded_demo):
    assert not DatasetVersion.objects.exclude(pii_status__in=("reviewed", "pii_found", "clean")).exists()
    for (consumer, endpoint), denied_by in SEEDED_DECISIONS.items():
        decision = _decision(consumer, endpoint)
        assert decision.allowed is (not denied_by), (consumer, endpoint, decision.reason)
        if denied_by:
            assert set(decision.policies) == denied_by, (consumer, endpoint, decision.reason)


def test_seeded_demo_leaves_exactly_one_finding_unreviewed_and_it_denies_helpdesk(seeded_demo):
    unreviewed = {}
    for version in DatasetVersion.objects.select_related("dataset"):
        scan = PiiScan.objects.filter(version=version, status="completed").latest("finished_at")
        reviewed = set(PiiEntityReview.objects.filter(version=version).values_list("entity_type", flat=True))
        unreviewed[str(version)] = sorted(set(scan.found_entity_types) - reviewed)
    assert {name: types for name, types in unreviewed.items() if types} == {"support-chats v1": ["UK_NHS"]}
    decision = _decision("helpdesk-eu", "demo:support-assistant")
    assert decision.facts["pii-clearance"]["missing"] == ["UK_NHS"]
    assert "not UK_NHS" in decision.reason


def test_seeded_reviews_were_made_by_each_datasets_steward_with_a_reason(seeded_demo):
    reviews = PiiEntityReview.objects.select_related("version__dataset__steward", "decided_by")
    assert reviews.count() >= 10
    for review in reviews:
        assert review.decided_by == review.version.dataset.steward, review
        assert review.reason.strip(), review
    dismissed = AuditEvent.objects.filter(action="pii_entity.dismissed")
    assert dismissed.count() == reviews.filter(decision="dismissed").count()
    assert all(event.reason for event in dismissed)


def test_the_readme_walkthrough_a_stewards_dismissal_turns_the_denial_into_an_allow(seeded_demo):
    admin = api_client_for(User.objects.get(username="admin"))
    carol = api_client_for(User.objects.get(username="carol"))
    ask = _readme_json(r"ASK='(\{.*\})'")
    review = _readme_json(r"-d '(\{\"entity_type\": \"UK_NHS\".*?\})'")
    assert review["decision"] == "dismissed" and review["reason"]

    before = admin.post("/api/v1/policies/decide/", ask, format="json")
    assert before.status_code == 200, before.content
    assert (before.json()["outcome"], before.json()["policies"]) == ("deny", ["pii-clearance"])
    assert "not UK_NHS" in before.json()["reason"]

    reviewed = carol.post("/api/v1/datasets/support-chats/versions/1/pii/reviews/", review, format="json")
    assert reviewed.status_code in (200, 201), reviewed.content
    assert "UK_NHS" not in reviewed.json()["pii_types"]

    after = admin.post("/api/v1/policies/decide/", ask, format="json")
    assert after.json()["outcome"] == "allow", after.json()["reason"]
    mine = carol.get("/api/v1/consumers/helpdesk-eu/endpoints/").json()
    assert "demo:support-assistant" in mine["allowed"]
    # The other denials stay denied: the review lifted only UK_NHS.
    assert not _decision("web-frontend", "demo:support-assistant").allowed


def test_seeding_the_demo_again_scans_and_reviews_nothing_more(seeded_demo):
    counts = (PiiScan.objects.count(), PiiEntityReview.objects.count(), AuditEvent.objects.count())
    facts = dict(DatasetVersion.objects.values_list("pk", "facts_version"))
    _seed()
    assert (PiiScan.objects.count(), PiiEntityReview.objects.count(), AuditEvent.objects.count()) == counts
    assert dict(DatasetVersion.objects.values_list("pk", "facts_version")) == facts
