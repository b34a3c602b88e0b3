"""The policy console in a real browser: simulate who may call, then a proposed change."""

from __future__ import annotations

import pytest

from serving.models import Consumer
from tests.browser.test_console import SCREENSHOTS, browser, page  # noqa: F401  (shared fixtures)
from tests.governance.pii_support import jsonl_bytes, scan_now

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_an_admin_sees_who_may_call_and_what_a_policy_change_would_change(page, live_server, claims_dataset, make_version):  # noqa: F811
    version = make_version(
        claims_dataset, jsonl_bytes("The router keeps disconnecting.", "Reset the camera twice."),
        allowed_purposes=["support"], residency_regions=["eu"],
    )
    scan_now(version)  # clean: a model trained on unscanned data is served to nobody
    Consumer.objects.create(name="web-frontend", purposes=["support"], region="us", commercial=True)
    Consumer.objects.create(name="helpdesk-eu", purposes=["support"], region="eu")
    page.goto(f"{live_server.url}/admin/policies/policydecision/")
    page.click("text=Policies and simulation")
    page.select_option("#invokers select[name=endpoint]", "claims-2024/v1")
    page.click("#invokers input[type=submit]")
    result = page.inner_text("#invokers-result")
    assert "a model trained on claims-2024 v1 may be served only in eu; consumer web-frontend is in us" in result
    assert "allowed: consumer helpdesk-eu may call a model trained on claims-2024 v1" in result
    page.fill("#id_file", "residency.cedar")
    page.fill("#id_content", "// Residency is not checked any more.\n")
    page.click("#change input[type=submit]")
    assert "1 of 6 decisions would change" in page.inner_text("#diff-summary")
    assert "web-frontend" in page.inner_text("#diff-result")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "policies.png"), full_page=True)
