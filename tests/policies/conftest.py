"""Fixtures for the policy engine: a clean runtime, a private policy folder, consumers."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings

from policies import decisions
from policies.decision_log import decision_log
from policies.requests import ResourceFacts
from serving.models import Consumer

SHIPPED_POLICIES = Path(django_settings.BASE_DIR) / "policies"


@pytest.fixture(autouse=True)
def policy_runtime(settings: Any) -> Iterator[None]:
    """Each test starts with the shipped policies, no cached decisions and an empty log queue."""
    settings.PEDIGREE_POLICY_DIR = SHIPPED_POLICIES
    settings.PEDIGREE_POLICY_RELOAD_SECONDS = 0
    settings.PEDIGREE_DECISION_LOG = "all"
    decisions.clear_decision_cache()
    decision_log.discard()
    yield
    decision_log.discard()
    decisions.clear_decision_cache()


@pytest.fixture
def policy_dir(settings: Any, tmp_path: Path) -> Path:
    """A private copy of the shipped policies, in force for the test (to edit and reload)."""
    target = tmp_path / "policies"
    target.mkdir()
    shutil.copy(SHIPPED_POLICIES / "schema.cedarschema", target)
    for path in SHIPPED_POLICIES.glob("*.cedar"):
        shutil.copy(path, target)
    (target / "owners").mkdir()
    for path in (SHIPPED_POLICIES / "owners").glob("*.cedar"):
        shutil.copy(path, target / "owners")
    shutil.copytree(SHIPPED_POLICIES / "tests", target / "tests")
    settings.PEDIGREE_POLICY_DIR = target
    return target


@pytest.fixture
def web_frontend(db: Any) -> Consumer:
    """A commercial US consumer for support, cleared for no PII."""
    return Consumer.objects.create(
        name="web-frontend", groups=["support-team"], purposes=["support"], region="us", commercial=True
    )


@pytest.fixture
def claims_assistant(db: Any) -> Consumer:
    """A US consumer for fraud prevention, cleared for names and SSNs."""
    return Consumer.objects.create(
        name="claims-assistant",
        groups=["claims-team"],
        pii_clearances=["PERSON", "US_SSN"],
        purposes=["fraud_prevention"],
        region="us",
    )


@pytest.fixture
def support_bot() -> ResourceFacts:
    """An endpoint serving a model trained on claims-2024 v2 (names and SSNs)."""
    return ResourceFacts(
        kind="Endpoint",
        id="support-bot",
        label="model support-bot v3",
        pii_types=frozenset({"PERSON", "US_SSN"}),
        licences=frozenset({"proprietary"}),
        permissions={"training": True, "commercial_use": True, "attribution": False, "share_alike": False},
        purposes=frozenset({"support", "fraud_prevention"}),
        regions=frozenset({"us"}),
        owners=frozenset({"claims-team"}),
        facts_version=3,
        origins={"pii_types:PERSON": ("claims-2024 v2",), "pii_types:US_SSN": ("claims-2024 v2",)},
    )
