"""Revocation and expiry quarantine everything downstream; exceptions; impact reports."""

from __future__ import annotations

import csv
import datetime as dt
import io
from typing import Any

import pytest
from django.utils import timezone

from governance.lineage import effective_facts, graph
from governance.lineage.impact import impact_report
from governance.lineage.services import (
    do_grant_quarantine_exception,
    do_lapse_quarantine_exceptions,
    do_withdraw_quarantine_exception,
)
from governance.models import AuditEvent, LineageNode
from governance.services import do_expire_dataset_versions, do_revoke_dataset_version
from pedigree.errors import InvalidInput, PermissionDenied
from tests.governance.lineage_factories import (
    deployed,
    endpoint_node,
    fresh,
    model_node,
    trained_on,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def deployment(claims_dataset: Any, make_version: Any) -> dict[str, Any]:
    """claims v1 and v2 → model (+ base) → endpoint; another model on v2 only."""
    version, other = make_version(claims_dataset), make_version(claims_dataset)
    data, other_data = graph.node_for_dataset_version(version), graph.node_for_dataset_version(other)
    base = model_node("base")
    model = trained_on(model_node("claims-bot v1"), data, other_data)
    graph.add_edge(upstream=base, downstream=model, relation="base_model")
    endpoint = deployed(endpoint_node("claims-bot"), model)
    unrelated = trained_on(model_node("other-bot v1"), other_data)
    return {"version": version, "data": data, "other": other_data, "base": base, "model": model, "endpoint": endpoint, "unrelated": unrelated}


def _revoke(d: dict[str, Any], actor: Any) -> None:
    do_revoke_dataset_version(actor=actor, version=d["version"], reason="consent withdrawn")


def test_revoking_a_dataset_quarantines_its_models(deployment: dict[str, Any], alice: Any) -> None:
    _revoke(deployment, alice)
    assert fresh(deployment["model"]).effective_status == "quarantined"


def test_revoking_a_dataset_quarantines_the_endpoints_serving_its_models(deployment: dict[str, Any], alice: Any) -> None:
    _revoke(deployment, alice)
    facts = effective_facts(node=fresh(deployment["endpoint"]))
    assert facts.quarantined and facts.status == "quarantined"


def test_revocation_leaves_assets_not_made_from_the_data_alone(deployment: dict[str, Any], alice: Any) -> None:
    _revoke(deployment, alice)
    assert fresh(deployment["unrelated"]).effective_status == "active"
    assert fresh(deployment["base"]).effective_status == "active"


def test_the_quarantine_explains_which_revocation_caused_it(deployment: dict[str, Any], alice: Any) -> None:
    _revoke(deployment, alice)
    explained = effective_facts(node=fresh(deployment["endpoint"]), explain=True).explanations
    assert explained is not None
    [cause] = explained["quarantine"]
    assert (cause["cause"]["label"], cause["status"], cause["reason"]) == ("claims-2024 v1", "revoked", "consent withdrawn")
    assert [s["label"] for s in cause["because"][0]["path"]] == ["claims-2024 v1", "claims-bot v1", "claims-bot"]


def test_revocation_records_the_quarantined_assets_in_the_audit_log(deployment: dict[str, Any], alice: Any) -> None:
    _revoke(deployment, alice)
    event = AuditEvent.objects.get(action="lineage.quarantined")
    assert sorted(event.changes["quarantined"]) == sorted([deployment["model"].pk, deployment["endpoint"].pk])
    assert event.actor_label == "alice"


def test_an_expired_dataset_quarantines_its_models(deployment: dict[str, Any], alice: Any) -> None:
    from governance.services import do_update_version_governance

    tomorrow = timezone.localdate() + dt.timedelta(days=1)
    do_update_version_governance(actor=alice, version=deployment["version"], changes={"expires_at": tomorrow}, reason="contract ends")
    do_expire_dataset_versions(today=tomorrow + dt.timedelta(days=1))
    assert fresh(deployment["data"]).effective_status == "expired"
    assert fresh(deployment["model"]).effective_status == "quarantined"


def test_a_model_retrained_without_the_data_is_not_quarantined(deployment: dict[str, Any], alice: Any) -> None:
    _revoke(deployment, alice)
    retrained = trained_on(model_node("claims-bot v2"), deployment["other"])
    graph.add_edge(upstream=deployment["base"], downstream=retrained, relation="base_model")
    assert fresh(retrained).effective_status == "active"


def test_redeploying_the_endpoint_to_the_retrained_model_lifts_its_quarantine(deployment: dict[str, Any], alice: Any) -> None:
    _revoke(deployment, alice)
    retrained = trained_on(model_node("claims-bot v2"), deployment["other"])
    graph.remove_edge(upstream=deployment["model"], downstream=deployment["endpoint"], relation="deployed_as")
    deployed(deployment["endpoint"], retrained)
    assert fresh(deployment["endpoint"]).effective_status == "active"
    assert fresh(deployment["model"]).effective_status == "quarantined"


def _grant(d: dict[str, Any], actor: Any, **overrides: Any) -> Any:
    arguments = {
        "actor": actor, "node": fresh(d["model"]), "cause": d["data"], "reason": "legal approved until retrain",
        "expires_at": timezone.now() + dt.timedelta(days=7), **overrides,
    }
    return do_grant_quarantine_exception(**arguments)


def test_an_admin_exception_lifts_the_quarantine_until_it_expires(deployment: dict[str, Any], alice: Any, root: Any) -> None:
    _revoke(deployment, alice)
    _grant(deployment, root)
    assert fresh(deployment["model"]).effective_status == "active"
    assert fresh(deployment["endpoint"]).effective_status == "active"


def test_only_an_admin_may_record_an_exception(deployment: dict[str, Any], alice: Any) -> None:
    _revoke(deployment, alice)
    with pytest.raises(PermissionDenied, match="admin"):
        _grant(deployment, alice)


def test_an_exception_needs_a_reason_and_a_future_expiry(deployment: dict[str, Any], alice: Any, root: Any) -> None:
    _revoke(deployment, alice)
    with pytest.raises(InvalidInput, match="reason"):
        _grant(deployment, root, reason=" ")
    with pytest.raises(InvalidInput, match="future"):
        _grant(deployment, root, expires_at=timezone.now() - dt.timedelta(minutes=1))


def test_an_exception_for_an_asset_not_upstream_is_refused(deployment: dict[str, Any], root: Any) -> None:
    with pytest.raises(InvalidInput, match="not upstream"):
        _grant(deployment, root, node=deployment["unrelated"])


def test_a_lapsed_exception_reads_as_quarantined_before_the_hourly_task(deployment: dict[str, Any], alice: Any, root: Any) -> None:
    _revoke(deployment, alice)
    exception = _grant(deployment, root, expires_at=timezone.now() + dt.timedelta(seconds=1))
    type(exception).objects.filter(pk=exception.pk).update(expires_at=timezone.now() - dt.timedelta(seconds=1))
    LineageNode.objects.filter(pk=deployment["model"].pk).update(
        effective_quarantine=_with_expiry(fresh(deployment["model"]).effective_quarantine, timezone.now() - dt.timedelta(seconds=1))
    )
    facts = effective_facts(node=fresh(deployment["model"]))
    assert facts.quarantined and "lapsed" in facts.status_note


def _with_expiry(effective: dict[str, Any], when: dt.datetime) -> dict[str, Any]:
    effective["status_summary"]["exceptions_expire_at"] = when.isoformat()
    return effective


def test_the_hourly_task_requarantines_after_an_exception_lapses(deployment: dict[str, Any], alice: Any, root: Any) -> None:
    _revoke(deployment, alice)
    exception = _grant(deployment, root)
    assert do_lapse_quarantine_exceptions(now=exception.expires_at + dt.timedelta(seconds=1)) == [exception.pk]
    assert fresh(deployment["model"]).effective_status == "quarantined"
    assert AuditEvent.objects.filter(action="lineage.exception_lapsed").count() == 1


def test_withdrawing_an_exception_requarantines_at_once(deployment: dict[str, Any], alice: Any, root: Any) -> None:
    _revoke(deployment, alice)
    exception = _grant(deployment, root)
    do_withdraw_quarantine_exception(actor=root, exception=exception, reason="retrain done elsewhere")
    assert fresh(deployment["model"]).effective_status == "quarantined"


def test_the_impact_preview_lists_every_downstream_asset_with_its_path(deployment: dict[str, Any]) -> None:
    report = impact_report(deployment["data"])
    rows = {row.label: row for row in report.rows if row.kind != "run"}
    assert report.mode == "preview"
    assert set(rows) == {"claims-bot v1", "claims-bot"}
    assert rows["claims-bot"].path_text == "claims-2024 v1 → [trained_on] claims-bot v1 → [deployed_as] claims-bot"
    assert (rows["claims-bot"].status_now, rows["claims-bot"].status_after) == ("active", "quarantined")


def test_the_impact_preview_changes_nothing(deployment: dict[str, Any]) -> None:
    impact_report(deployment["data"])
    assert fresh(deployment["model"]).effective_status == "active"
    assert fresh(deployment["data"]).own_status == "active"


def test_the_impact_report_after_revocation_shows_what_happened(deployment: dict[str, Any], alice: Any) -> None:
    _revoke(deployment, alice)
    report = impact_report(fresh(deployment["data"]))
    assert report.mode == "actual"
    assert report.counts["quarantined"] == 2


def test_the_impact_report_renders_as_csv_and_html(deployment: dict[str, Any]) -> None:
    report = impact_report(deployment["data"])
    rows = list(csv.DictReader(io.StringIO(report.as_csv())))
    assert {row["label"] for row in rows} >= {"claims-bot v1", "claims-bot"}
    html = report.as_html()
    assert "Impact of revoking claims-2024 v1" in html and "claims-bot v1" in html
