"""/api/docs/ renders in a real browser with no network beyond this server (offline)."""

from __future__ import annotations

import pytest

from tests.browser.test_console import SCREENSHOTS, browser  # noqa: F401  (the shared Chromium fixture)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_the_api_docs_render_offline_in_chromium(browser, live_server):  # noqa: F811
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    elsewhere: list[str] = []

    def offline(route):  # anything not on this server fails, as on a machine without internet
        if route.request.url.startswith(live_server.url):
            route.continue_()
        else:
            elsewhere.append(route.request.url)
            route.abort()

    page.route("**/*", offline)
    try:
        page.goto(f"{live_server.url}/api/docs/", wait_until="networkidle")
        page.wait_for_selector(".opblock", timeout=20000)
        assert page.locator(".opblock").count() >= 20
        assert "Pedigree API" in page.locator(".info .title").inner_text()
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / "api-docs.png"))
    finally:
        context.close()
    assert elsewhere == [], f"/api/docs/ asked other hosts: {elsewhere}"
