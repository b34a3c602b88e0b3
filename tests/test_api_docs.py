"""/api/docs/ works offline: Swagger UI's files come from this server, not a CDN."""

from __future__ import annotations

import re
from typing import Any

import pytest


@pytest.mark.django_db
def test_the_api_docs_page_loads_every_asset_from_this_server(client: Any, root: Any) -> None:
    client.force_login(root)
    response = client.get("/api/docs/")
    assert response.status_code == 200
    page = response.content.decode()
    assets = re.findall(r'(?:src|href)="([^"]+\.(?:js|css|png))"', page)
    assert any("swagger-ui-bundle" in asset for asset in assets), page[:2000]
    for asset in assets:
        assert asset.startswith("/static/"), f"{asset} is not served here: /api/docs/ would be blank offline"
        assert client.get(asset).status_code == 200, asset
    assert "cdn." not in page and "jsdelivr" not in page and "unpkg" not in page
