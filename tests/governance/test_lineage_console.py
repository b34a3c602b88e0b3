"""Lineage in the admin console: the SVG picture with facts beside it.

The dataset version, model version and endpoint pages all show it; model
versions and endpoints have console pages of their own (proxies of the
lineage nodes until customization and serving have real models).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from typing import Any

import pytest
from django.contrib.auth.models import Group, Permission, User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from governance.lineage import graph
from governance.lineage.svg import render_lineage_svg
from governance.models import DatasetVersion, LineageNode
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


def test_the_picture_counts_only_the_assets_it_leaves_out() -> None:
    model = model_node("base v1")
    for number in range(3):
        deployed(endpoint_node(f"endpoint-{number}"), model)
    assert "more not shown" not in render_lineage_svg(model)
    assert "… 2 more not shown" in render_lineage_svg(model, max_nodes=2)


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


# --- Model version and endpoint pages -------------------------------------------------------

SVG = "{http://www.w3.org/2000/svg}"


def _model_page(node: LineageNode) -> str:
    return f"/admin/governance/lineagemodelversion/{node.pk}/change/"


def _endpoint_page(node: LineageNode) -> str:
    return f"/admin/governance/lineageendpoint/{node.pk}/change/"


def _picture(page: str) -> ET.Element:
    """The lineage picture of a console page, parsed."""
    found = re.search(r'<svg xmlns="http://www.w3.org/2000/svg" class="pedigree-lineage-svg".*?</svg>', page, re.S)
    assert found, "no lineage picture on the page"
    return ET.fromstring(found.group(0))


def _svg_links(page: str) -> dict[str, str]:
    """{label shown in a box: the page it links to} for every linked box of the picture."""
    links = {}
    for anchor in _picture(page).iter(f"{SVG}a"):
        label = next(text.text for text in anchor.iter(f"{SVG}text") if text.get("font-weight") == "600")
        links[str(label)] = str(anchor.get("href"))
    return links


@pytest.fixture
def claims_chain(claims_dataset: Any, make_version: Any) -> tuple[DatasetVersion, LineageNode, LineageNode]:
    """claims-2024 v1 → claims-bot v1 (trained on) → claims-bot endpoint (deployed as)."""
    version = make_version(claims_dataset)
    model = trained_on(model_node("claims-bot v1"), graph.node_for_dataset_version(version))
    endpoint = deployed(endpoint_node("claims-bot"), model)
    return version, model, endpoint


def test_the_console_index_lists_model_versions_and_endpoints(console: Client) -> None:
    page = console.get("/admin/").content.decode()
    assert 'href="/admin/governance/lineagemodelversion/"' in page and "Model versions" in page
    assert 'href="/admin/governance/lineageendpoint/"' in page and "Endpoints" in page


def test_the_model_versions_page_lists_only_model_versions(console: Client, claims_chain: Any) -> None:
    version, model, endpoint = claims_chain
    page = console.get("/admin/governance/lineagemodelversion/").content.decode()
    assert f'href="{_model_page(model)}"' in page
    assert f'href="{_endpoint_page(endpoint)}"' in page  # in its "used by" column, not as a row
    rows = re.findall(r'<tr>.*?</tr>', page.split('id="result_list"')[1], re.S)[1:]
    assert len(rows) == 1 and "claims-bot v1" in rows[0]
    assert "trained on" in rows[0] and f"/admin/governance/datasetversion/{version.pk}/change/" in rows[0]


def test_the_endpoints_page_lists_only_endpoints(console: Client, claims_chain: Any) -> None:
    _, model, endpoint = claims_chain
    page = console.get("/admin/governance/lineageendpoint/").content.decode()
    rows = re.findall(r'<tr>.*?</tr>', page.split('id="result_list"')[1], re.S)[1:]
    assert len(rows) == 1 and f'href="{_endpoint_page(endpoint)}"' in rows[0]
    assert "deployed as" in rows[0] and f'href="{_model_page(model)}"' in rows[0]


def test_a_model_version_page_shows_the_picture_with_the_facts_beside_it(console: Client, claims_chain: Any) -> None:
    version, model, _ = claims_chain
    response = console.get(_model_page(model))
    page = response.content.decode()
    assert response.status_code == 200 and "<h2>claims-bot v1</h2>" in page
    assert '<svg xmlns="http://www.w3.org/2000/svg" class="pedigree-lineage-svg"' in page
    assert 'aria-label="lineage of claims-bot v1"' in page
    facts = page.split('class="pedigree-lineage-facts"')[1]
    assert "<strong>Status:</strong> active" in facts
    assert "<strong>Licences:</strong> MIT" in facts and "<strong>Owners:</strong> claims-team, ml-platform" in facts


def test_an_endpoint_page_shows_the_picture_with_the_facts_beside_it(console: Client, claims_chain: Any) -> None:
    _, _, endpoint = claims_chain
    page = console.get(_endpoint_page(endpoint)).content.decode()
    assert 'aria-label="lineage of claims-bot"' in page and "pedigree-lineage-facts" in page
    assert "claims-bot v1" in page and "claims-2024 v1" in page  # two steps upstream


def test_the_picture_links_each_asset_to_its_own_page(console: Client, claims_chain: Any) -> None:
    version, model, endpoint = claims_chain
    run = LineageNode.objects.get(kind="run", downstream_edges__downstream__reference=str(version.pk))
    assert _svg_links(console.get(_endpoint_page(endpoint)).content.decode()) == {
        "claims-bot v1": _model_page(model),
        "claims-2024 v1": f"/admin/governance/datasetversion/{version.pk}/change/",
        "ingest of claims-2024 v1": f"/admin/governance/lineagenode/{run.pk}/change/",  # runs: the node page
    }
    links = _svg_links(console.get(_model_page(model)).content.decode())
    assert links["claims-bot"] == _endpoint_page(endpoint)
    assert links["claims-2024 v1"] == f"/admin/governance/datasetversion/{version.pk}/change/"
    dataset_page = console.get(f"/admin/governance/datasetversion/{version.pk}/change/").content.decode()
    assert _svg_links(dataset_page)["claims-bot v1"] == _model_page(model)


def test_a_quarantined_model_version_is_coloured_in_its_list_and_its_picture(
    console: Client, claims_chain: Any, alice: Any
) -> None:
    version, model, endpoint = claims_chain
    do_revoke_dataset_version(actor=alice, version=version, reason="consent withdrawn")
    page = console.get(_model_page(model)).content.decode()
    boxes = {group.get("data-node"): group for group in _picture(page).iter(f"{SVG}g")}
    focus = boxes[str(model.pk)]
    assert focus.get("class") == "node status-quarantined kind-model_version"
    assert (focus.find(f"{SVG}rect").get("stroke"), focus.find(f"{SVG}rect").get("fill")) == ("#e65100", "#fff3e0")  # type: ignore[union-attr]
    assert boxes[str(endpoint.pk)].get("class") == "node status-quarantined kind-endpoint"
    assert "Quarantined by:" in page and "consent withdrawn" in page
    listing = console.get("/admin/governance/lineagemodelversion/?effective_status=quarantined").content.decode()
    assert 'class="pedigree-status status-quarantined" style="color:#e65100;background:#fff3e0' in listing


def test_a_quarantined_model_version_offers_an_exception_that_returns_to_its_page(
    console: Client, claims_chain: Any, alice: Any
) -> None:
    version, model, _ = claims_chain
    data = graph.node_for_dataset_version(version)
    assert "Record a quarantine exception" not in console.get(_model_page(model)).content.decode()
    do_revoke_dataset_version(actor=alice, version=version, reason="consent withdrawn")
    page = console.get(_model_page(model)).content.decode()
    assert f'href="/admin/governance/lineagenode/{model.pk}/exception/"' in page
    response = console.post(
        f"/admin/governance/lineagenode/{model.pk}/exception/",
        {"cause": data.pk, "expires_at": "2099-01-01T00:00", "reason": "legal sign-off"},
    )
    assert response.status_code == 302 and response["Location"] == _model_page(model)
    assert "Exceptions in force:" in console.get(_model_page(model)).content.decode()
    assert fresh(model).effective_status == "active"


def test_the_endpoint_page_links_to_who_may_call_it(console: Client, claims_chain: Any) -> None:
    _, _, endpoint = claims_chain
    page = console.get(_endpoint_page(endpoint)).content.decode()
    assert f'href="/admin/policies/policydecision/simulate/?endpoint={endpoint.reference}#invokers"' in page


def test_model_version_and_endpoint_pages_are_read_only(console: Client, claims_chain: Any) -> None:
    _, model, endpoint = claims_chain
    page = console.get(_model_page(model)).content.decode()
    assert 'name="_save"' not in page and "/delete/" not in page
    assert console.get("/admin/governance/lineagemodelversion/add/").status_code == 403
    assert console.post(_model_page(model), {"label": "renamed"}).status_code == 403
    assert console.post(f"/admin/governance/lineageendpoint/{endpoint.pk}/delete/", {"post": "yes"}).status_code == 403
    assert fresh(model).label == "claims-bot v1" and LineageNode.objects.filter(pk=endpoint.pk).exists()


def test_a_node_of_another_kind_is_not_shown_as_a_model_version(console: Client, claims_chain: Any) -> None:
    _, _, endpoint = claims_chain
    response = console.get(_model_page(endpoint))
    assert response.status_code == 302 and response["Location"] == "/admin/"  # "doesn't exist"


def test_a_console_login_alone_sees_no_lineage_but_an_auditor_sees_it_all(claims_chain: Any) -> None:
    _, model, _ = claims_chain
    staff = User.objects.create_user("sam", password="pw-sam", is_staff=True)
    client = Client()
    client.force_login(staff)
    assert client.get(_model_page(model)).status_code == 403
    staff.user_permissions.add(Permission.objects.get(codename="view_lineagemodelversion"))
    client.force_login(User.objects.get(pk=staff.pk))
    assert client.get(_model_page(model)).status_code == 403  # a model permission is not a role
    assert client.get("/admin/governance/lineageendpoint/").status_code == 403
    staff.groups.add(Group.objects.get_or_create(name="auditors")[0])
    client.force_login(User.objects.get(pk=staff.pk))
    assert client.get(_model_page(model)).status_code == 200
    assert client.get("/admin/governance/lineageendpoint/").status_code == 200


def test_the_model_versions_list_costs_the_same_queries_for_more_rows(console: Client, claims_dataset: Any, make_version: Any) -> None:
    data = graph.node_for_dataset_version(make_version(claims_dataset))

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert console.get("/admin/governance/lineagemodelversion/").status_code == 200
        return len(captured.captured_queries)

    for number in range(2):
        deployed(endpoint_node(f"bot-{number}"), trained_on(model_node(f"bot v{number}"), data))
    few = queries()
    for number in range(2, 8):
        deployed(endpoint_node(f"bot-{number}"), trained_on(model_node(f"bot v{number}"), data))
    assert queries() == few
