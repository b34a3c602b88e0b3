"""Lineage in the admin console: the SVG picture with facts beside it."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from governance.lineage import graph
from governance.lineage.svg import render_lineage_svg
from governance.services import do_revoke_dataset_version
from tests.governance.lineage_factories import (
    deployed,
    endpoint_node,
    fresh,
    model_node,
    trained_on,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def console(root: Any) -> Client:
    client = Client()
    client.force_login(root)
    return client


def test_the_dataset_version_page_shows_the_lineage_picture_and_facts(console: Client, claims_dataset: Any, make_version: Any) -> None:
    version = make_version(claims_dataset)
    trained_on(model_node("claims-bot v1"), graph.node_for_dataset_version(version))
    page = console.get(f"/admin/governance/datasetversion/{version.pk}/change/").content.decode()
    assert '<svg xmlns="http://www.w3.org/2000/svg" class="pedigree-lineage-svg"' in page
    assert "claims-bot v1" in page and "Permissions:" in page


def test_the_picture_colours_quarantined_assets(claims_dataset: Any, make_version: Any, alice: Any) -> None:
    version = make_version(claims_dataset)
    model = trained_on(model_node("claims-bot v1"), graph.node_for_dataset_version(version))
    do_revoke_dataset_version(actor=alice, version=version, reason="consent withdrawn")
    svg = render_lineage_svg(fresh(model))
    assert 'class="node status-quarantined kind-model_version"' in svg
    assert 'class="node status-revoked kind-dataset_version"' in svg


def test_the_picture_escapes_labels() -> None:
    model = model_node('<script>alert("x")</script>')
    svg = render_lineage_svg(model)
    assert "<script>" not in svg and "&lt;script&gt;" in svg


def test_the_lineage_node_page_renders_for_model_versions_and_endpoints(console: Client) -> None:
    model = model_node("support-bot v1")
    endpoint = deployed(endpoint_node("support-bot"), model)
    page = console.get(f"/admin/governance/lineagenode/{endpoint.pk}/change/").content.decode()
    assert "pedigree-lineage-svg" in page and "support-bot v1" in page


def test_an_admin_records_an_exception_from_the_console(console: Client, claims_dataset: Any, make_version: Any, alice: Any) -> None:
    version = make_version(claims_dataset)
    data = graph.node_for_dataset_version(version)
    model = trained_on(model_node("claims-bot v1"), data)
    do_revoke_dataset_version(actor=alice, version=version, reason="consent withdrawn")
    response = console.post(
        f"/admin/governance/lineagenode/{model.pk}/exception/",
        {"cause": data.pk, "expires_at": "2099-01-01T00:00", "reason": "legal sign-off"},
    )
    assert response.status_code == 302
    assert fresh(model).effective_status == "active"
