"""The lineage console in a real browser: from a model version's list to its picture and back."""

from __future__ import annotations

import pytest

from governance.lineage import graph
from governance.services import do_revoke_dataset_version
from tests.browser.test_console import SCREENSHOTS, browser, page  # noqa: F401  (shared fixtures)
from tests.governance.lineage_factories import deployed, endpoint_node, model_node, trained_on

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_steward_follows_a_quarantined_model_from_its_list_to_its_endpoint(page, live_server, claims_dataset, make_version, alice):  # noqa: F811
    version = make_version(claims_dataset)
    model = trained_on(model_node("claims-bot v1"), graph.node_for_dataset_version(version))
    endpoint = deployed(endpoint_node("claims-bot"), model)
    do_revoke_dataset_version(actor=alice, version=version, reason="consent withdrawn")

    page.goto(f"{live_server.url}/admin/")
    page.click("text=Model versions")
    page.click("#result_list >> text=claims-bot v1")
    picture = page.locator("svg.pedigree-lineage-svg")
    picture.wait_for()
    focus = picture.locator(f'g[data-node="{model.pk}"]')
    assert focus.get_attribute("class") == "node status-quarantined kind-model_version"
    assert focus.locator("rect").evaluate("rect => getComputedStyle(rect).stroke") == "rgb(230, 81, 0)"
    facts = page.inner_text(".pedigree-lineage-facts")
    assert "Quarantined by:" in facts and "consent withdrawn" in facts
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "model-version.png"), full_page=True)

    picture.locator(f'g[data-node="{endpoint.pk}"]').click()  # the endpoint's box links to its page
    page.wait_for_url(f"**/admin/governance/lineageendpoint/{endpoint.pk}/change/")
    assert "status-quarantined" in page.locator(f'svg.pedigree-lineage-svg g[data-node="{endpoint.pk}"]').get_attribute("class")
    assert page.locator("text=Who may call it?").count() == 1
    page.screenshot(path=str(SCREENSHOTS / "endpoint.png"), full_page=True)
