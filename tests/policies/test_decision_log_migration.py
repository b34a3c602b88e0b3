"""Migration 0002 moves every logged decision's explanation to a shared detail, losing nothing."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = [("policies", "0001_initial")]
AFTER = [("policies", "0002_decision_detail")]


def migrate(targets: list[tuple[str, str]]) -> Any:
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


def test_existing_decisions_keep_what_they_said() -> None:
    old_apps = migrate(BEFORE)
    OldDecision = old_apps.get_model("policies", "PolicyDecision")
    said = {"context": {"purpose": "support"}, "policies": ["pii-clearance"], "facts": {"pii-clearance": {"missing": ["PERSON"]}}}
    common = {"decided_at": "2026-11-01T10:00:00Z", "action": "endpoint.invoke", "resource": "Endpoint::support-bot"}
    for name in ("a", "b"):
        OldDecision.objects.create(principal=f"Consumer::{name}", outcome="deny", reason="denied: PII", **common, **said)
    OldDecision.objects.create(principal="Consumer::c", outcome="allow", reason="allowed: fine", **common, context={}, policies=["endpoint-invoke"], facts={})
    try:
        new_apps = migrate(AFTER)
        Decision = new_apps.get_model("policies", "PolicyDecision")
        Detail = new_apps.get_model("policies", "DecisionDetail")
        assert Decision.objects.count() == 3 and Detail.objects.count() == 2
        a, b, c = Decision.objects.select_related("detail").order_by("principal")
        assert a.detail_id == b.detail_id != c.detail_id
        assert (a.detail.context, a.detail.policies, a.detail.facts, a.detail.reason) == (
            said["context"], said["policies"], said["facts"], "denied: PII"
        )
        assert (c.detail.reason, c.detail.policies) == ("allowed: fine", ["endpoint-invoke"])
    finally:
        migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())  # back to the latest schema
