"""The lineage REST API under /api/v1/lineage/."""

from __future__ import annotations

import csv
import datetime as dt
import io
from typing import Any

import pytest
from django.utils import timezone

from governance.lineage import graph
from tests.governance.lineage_factories import (
    deployed,
    endpoint_node,
    fresh,
    model_node,
    trained_on,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def chain(claims_dataset: Any, make_version: Any) -> dict[str, Any]:
    version = make_version(claims_dataset, allowed_purposes=["support"])
    data = graph.node_for_dataset_version(version)
    model = trained_on(model_node("claims-bot v1"), data)
    endpoint = deployed(endpoint_node("claims-bot"), model)
    return {"version": version, "data": data, "model": model, "endpoint": endpoint}


def _url(node: Any, action: str = "") -> str:
    return f"/api/v1/lineage/nodes/{node.pk}/" + (f"{action}/" if action else "")


def test_the_lineage_index_links_nodes_and_exceptions(api_client: Any, mallory: Any) -> None:
    body = api_client(mallory).get("/api/v1/lineage/").json()
    assert body["nodes"].endswith("/api/v1/lineage/nodes/") and "trained_on" in body["relations"]


def test_anonymous_callers_cannot_read_lineage(api_client: Any, chain: dict[str, Any]) -> None:
    assert api_client(None).get(_url(chain["model"])).status_code == 401


def test_nodes_can_be_found_by_kind_and_reference(api_client: Any, erin: Any, chain: dict[str, Any]) -> None:
    body = api_client(erin).get("/api/v1/lineage/nodes/", {"kind": "dataset_version", "reference": chain["version"].pk}).json()
    assert [item["id"] for item in body["results"]] == [chain["data"].pk]


def test_downstream_lists_assets_with_depth(api_client: Any, erin: Any, chain: dict[str, Any]) -> None:
    body = api_client(erin).get(_url(chain["data"], "downstream"), {"relation": "trained_on,deployed_as"}).json()
    assert [(item["label"], item["depth"]) for item in body["assets"]] == [("claims-bot v1", 1), ("claims-bot", 2)]


def test_upstream_honours_the_depth_limit(api_client: Any, erin: Any, chain: dict[str, Any]) -> None:
    body = api_client(erin).get(_url(chain["endpoint"], "upstream"), {"depth": 1}).json()
    assert [item["label"] for item in body["assets"]] == ["claims-bot v1"]


def test_a_bad_depth_is_a_400_naming_the_field(api_client: Any, erin: Any, chain: dict[str, Any]) -> None:
    response = api_client(erin).get(_url(chain["data"], "downstream"), {"depth": "deep"})
    assert response.status_code == 400 and response.json()["error"]["field"] == "depth"


def test_effective_facts_come_with_explanations(api_client: Any, erin: Any, chain: dict[str, Any]) -> None:
    body = api_client(erin).get(_url(chain["endpoint"], "facts")).json()
    assert body["allowed_purposes"] == ["support"]
    [restriction] = body["explanations"]["allowed_purposes"]
    assert restriction["because"][0]["text"].startswith("purposes limited to support via dataset_version claims-2024 v1")


def test_the_impact_preview_is_json_by_default(api_client: Any, erin: Any, chain: dict[str, Any]) -> None:
    body = api_client(erin).get(_url(chain["data"], "impact")).json()
    assert body["mode"] == "preview"
    assert {a["label"]: a["status_after"] for a in body["assets"] if a["kind"] != "run"} == {
        "claims-bot v1": "quarantined", "claims-bot": "quarantined",
    }


def test_the_impact_report_downloads_as_csv(api_client: Any, erin: Any, chain: dict[str, Any]) -> None:
    response = api_client(erin).get(_url(chain["data"], "impact"), {"format": "csv"})
    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert "claims-bot" in {row["label"] for row in rows}


def test_the_impact_report_renders_as_html(api_client: Any, erin: Any, chain: dict[str, Any]) -> None:
    response = api_client(erin).get(_url(chain["data"], "impact"), {"format": "html"})
    assert response["Content-Type"].startswith("text/html") and b"claims-bot v1" in response.content


def test_the_lineage_picture_is_an_svg(api_client: Any, erin: Any, chain: dict[str, Any]) -> None:
    response = api_client(erin).get(_url(chain["model"], "svg"))
    assert response["Content-Type"].startswith("image/svg+xml") and response.content.startswith(b"<svg")


def test_the_steward_revokes_through_the_lineage_api_and_gets_the_impact(api_client: Any, alice: Any, chain: dict[str, Any]) -> None:
    response = api_client(alice).post(_url(chain["data"], "revoke"), {"reason": "consent withdrawn"})
    assert response.status_code == 200 and response.json()["mode"] == "actual"
    assert fresh(chain["endpoint"]).effective_status == "quarantined"


def test_an_outsider_cannot_revoke(api_client: Any, mallory: Any, chain: dict[str, Any]) -> None:
    response = api_client(mallory).post(_url(chain["data"], "revoke"), {"reason": "no"})
    assert response.status_code == 403
    assert fresh(chain["data"]).own_status == "active"


def test_revoking_needs_a_reason(api_client: Any, alice: Any, chain: dict[str, Any]) -> None:
    assert api_client(alice).post(_url(chain["data"], "revoke"), {}).status_code == 400


def test_models_are_not_revoked_through_the_dataset_revoke(api_client: Any, alice: Any, chain: dict[str, Any]) -> None:
    response = api_client(alice).post(_url(chain["model"], "revoke"), {"reason": "x"})
    assert response.status_code == 400 and "only dataset versions" in response.json()["error"]["message"]


def _exception_body(chain: dict[str, Any]) -> dict[str, Any]:
    return {"cause": chain["data"].pk, "reason": "legal sign-off", "expires_at": (timezone.now() + dt.timedelta(days=3)).isoformat()}


def test_an_admin_records_an_exception_through_the_api(api_client: Any, alice: Any, root: Any, chain: dict[str, Any]) -> None:
    api_client(alice).post(_url(chain["data"], "revoke"), {"reason": "consent withdrawn"})
    response = api_client(root).post(_url(chain["model"], "exceptions"), _exception_body(chain))
    assert response.status_code == 201 and response.json()["granted_by"] == "root"
    assert fresh(chain["model"]).effective_status == "active"


def test_a_steward_cannot_record_an_exception(api_client: Any, alice: Any, chain: dict[str, Any]) -> None:
    api_client(alice).post(_url(chain["data"], "revoke"), {"reason": "consent withdrawn"})
    assert api_client(alice).post(_url(chain["model"], "exceptions"), _exception_body(chain)).status_code == 403


def test_an_admin_withdraws_an_exception(api_client: Any, alice: Any, root: Any, chain: dict[str, Any]) -> None:
    api_client(alice).post(_url(chain["data"], "revoke"), {"reason": "consent withdrawn"})
    created = api_client(root).post(_url(chain["model"], "exceptions"), _exception_body(chain)).json()
    response = api_client(root).post(f"/api/v1/lineage/exceptions/{created['id']}/withdraw/", {"reason": "ended early"})
    assert response.status_code == 200 and response.json()["withdrawn_by"] == "root"
    assert fresh(chain["model"]).effective_status == "quarantined"
