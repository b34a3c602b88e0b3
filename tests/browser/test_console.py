"""The admin console in a real browser (headless Chromium driven by Playwright)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from governance.models import AuditEvent, DatasetVersion

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

CHROMIUM = os.environ.get("PEDIGREE_CHROMIUM", "/usr/bin/chromium")
SCREENSHOTS = Path(__file__).resolve().parents[2] / "var" / "screenshots"


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if not shutil.which(CHROMIUM):
        pytest.fail(f"Chromium not found at {CHROMIUM}: apt-get install chromium (make test does)")
    # Playwright's sync API runs an event loop in this thread; the ORM calls
    # the test makes around it are ordinary synchronous ones.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking"],
        )
        yield browser
        browser.close()


@pytest.fixture
def page(browser, live_server, root):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.goto(f"{live_server.url}/admin/login/")
    page.fill("#id_username", "root")
    page.fill("#id_password", "pw-root")
    page.click("input[type=submit]")
    page.wait_for_selector("#site-name")
    yield page
    context.close()


def test_a_steward_finds_a_dataset_and_reads_its_version_history(page, live_server, claims_dataset, make_version):
    make_version(claims_dataset, licence="CC-BY-4.0")
    make_version(claims_dataset, licence="MIT")
    page.goto(f"{live_server.url}/admin/governance/dataset/?q=claims")
    page.click("text=claims-2024")
    inline = page.locator("#versions-group")
    text = inline.inner_text()
    assert "claims-2024 v1" in text and "claims-2024 v2" in text and "CC-BY-4.0" in text
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "dataset.png"), full_page=True)


def test_the_version_page_is_read_only_and_changes_go_through_recorded_actions(page, live_server, claims_dataset, make_version):
    version = make_version(claims_dataset, licence="MIT")
    page.goto(f"{live_server.url}/admin/governance/datasetversion/{version.pk}/change/")
    assert page.locator("input[name=licence]").count() == 0  # no editable licence field
    assert version.sha256 in page.inner_text("body")
    page.click("text=Change governance metadata")
    page.select_option("#id_licence", "CC-BY-NC-4.0")
    page.check("input[name=residency_regions][value=eu]")
    page.fill("#id_reason", "licence corrected after legal review")
    page.click("input[type=submit]")
    page.wait_for_selector(".messagelist")
    assert "updated" in page.inner_text(".messagelist")
    version.refresh_from_db()
    assert (version.licence, version.permits_commercial_use, version.residency_regions) == ("CC-BY-NC-4.0", False, ["eu"])
    assert "licence corrected after legal review" in page.inner_text("table.pedigree-history")
    page.screenshot(path=str(SCREENSHOTS / "version.png"), full_page=True)


def test_a_governance_change_without_a_reason_is_refused_on_the_form(page, live_server, claims_dataset, make_version):
    version = make_version(claims_dataset)
    page.goto(f"{live_server.url}/admin/governance/datasetversion/{version.pk}/governance/")
    page.click("input[type=submit]")
    assert "This field is required" in page.inner_text(".errors")
    assert AuditEvent.objects.filter(action="dataset_version.governance_updated").count() == 0


def test_revoking_from_the_console_asks_for_a_reason_and_records_it(page, live_server, claims_dataset, make_version):
    version = make_version(claims_dataset)
    page.goto(f"{live_server.url}/admin/governance/datasetversion/{version.pk}/change/")
    page.click("text=Revoke")
    page.fill("#id_reason", "customer withdrew consent")
    page.click("input[type=submit]")
    page.wait_for_selector(".messagelist")
    assert DatasetVersion.objects.get(pk=version.pk).status == "revoked"
    assert page.locator("text=Revoke").count() == 0 or "revoked" in page.inner_text("body")
    event = AuditEvent.objects.get(action="dataset_version.revoked")
    assert (event.actor_label, event.reason) == ("root", "customer withdrew consent")


def test_versions_filter_by_licence_and_status_in_the_list(page, live_server, claims_dataset, make_version):
    make_version(claims_dataset, licence="MIT")
    make_version(claims_dataset, licence="CC0-1.0")
    page.goto(f"{live_server.url}/admin/governance/datasetversion/?licence=CC0-1.0")
    rows = page.locator("#result_list tbody tr")
    assert rows.count() == 1 and "claims-2024 v2" in rows.inner_text()
