"""Fixtures for serving: the shipped policies in force, consumers owned by the personas."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.contrib.auth.models import User

from policies import decisions
from policies.decision_log import decision_log
from serving.models import Consumer

SHIPPED_POLICIES = Path(django_settings.BASE_DIR) / "policies"


@pytest.fixture(autouse=True)
def policy_runtime(settings: Any) -> Iterator[None]:
    """The shipped policies, no cached decisions and an empty decision log queue."""
    settings.PEDIGREE_POLICY_DIR = SHIPPED_POLICIES
    settings.PEDIGREE_POLICY_RELOAD_SECONDS = 0
    decisions.clear_decision_cache()
    decision_log.discard()
    yield
    decision_log.discard()
    decisions.clear_decision_cache()


@pytest.fixture
def claims_fraud(alice: User) -> Consumer:
    """alice's consumer: US fraud screening, cleared for names and SSNs."""
    return Consumer.objects.create(
        name="claims-fraud-us", description="Fraud screening", owner=alice, groups=["claims-team"],
        pii_clearances=["PERSON", "US_SSN"], purposes=["fraud_prevention"], region="us",
    )


@pytest.fixture
def helpdesk(mallory: User) -> Consumer:
    """mallory's consumer: EU support assistant, cleared for names and emails."""
    return Consumer.objects.create(
        name="helpdesk-eu", owner=mallory, groups=["support-team"], pii_clearances=["PERSON", "EMAIL_ADDRESS"],
        purposes=["support"], region="eu", commercial=True,
    )
