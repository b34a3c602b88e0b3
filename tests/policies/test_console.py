"""The console page "Policies and simulation" and the decision log in the admin."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from policies import services
from serving.models import Consumer

pytestmark = pytest.mark.django_db

PAGE = "/admin/policies/policydecision/simulate/"


@pytest.fixture
def console(root: Any) -> Client:
    client = Client()
    client.force_login(root)
    return client


def test_the_page_lists_the_policies_in_force(console: Client) -> None:
    html = console.get(PAGE).content.decode()
    assert "pii_clearance.cedar:8" in html and "owner-claims-team-no-export" in html


def test_the_page_shows_which_consumers_may_call_an_endpoint(console: Client, claims_dataset: Any, make_version: Any, web_frontend: Consumer) -> None:
    make_version(claims_dataset, allowed_purposes=["support"], residency_regions=["eu"])
    html = console.get(PAGE, {"endpoint": "claims-2024/v1"}).content.decode()
    assert "a model trained on claims-2024 v1 may be served only in eu; consumer web-frontend is in us" in html


def test_the_page_shows_the_diff_of_a_proposed_file(console: Client, claims_dataset: Any, make_version: Any, web_frontend: Consumer) -> None:
    version = make_version(claims_dataset, allowed_purposes=["support"], residency_regions=["global"])
    version.pii_types = ["PERSON"]
    version.facts_version += 1  # as the PII review does: the lineage reads the new facts
    version.save(update_fields=["pii_types", "facts_version"])
    response = console.post(PAGE, {"file": "pii_clearance.cedar", "content": "// PII is no longer checked.\n"})
    html = response.content.decode()
    assert "1 of 5 decisions would change" in html


def test_the_page_reports_an_invalid_proposal_with_its_line(console: Client) -> None:
    html = console.post(PAGE, {"file": "extra.cedar", "content": '@id("x")\nforbid (principal, action, resource)\nwhen { oops };\n'}).content.decode()
    assert "extra.cedar:3:" in html


def test_the_decision_log_shows_queued_decisions(console: Client, alice: Any, claims_dataset: Any, make_version: Any) -> None:
    services.decide(alice, "dataset.read", make_version(claims_dataset))
    html = console.get("/admin/policies/policydecision/").content.decode()
    assert "User::alice" in html and "dataset-read" in html


def test_a_consumer_links_to_what_it_may_call(console: Client, web_frontend: Consumer) -> None:
    html = console.get("/admin/serving/consumer/").content.decode()
    assert "simulate/?consumer=web-frontend" in html
