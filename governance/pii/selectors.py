"""Reads about PII across versions (for filters and lists)."""

from __future__ import annotations

from django.db.models import Q, QuerySet

from governance.models import DatasetVersion
from governance.models.pii import PiiEntityReview, PiiFinding, PiiReviewDecision, PiiScanStatus


def versions_with_pii_type(entity_type: str) -> QuerySet[DatasetVersion]:
    """Versions holding ``entity_type``: confirmed by a steward, or found by a
    completed scan and not dismissed."""
    entity_type = entity_type.strip().upper()
    confirmed = PiiEntityReview.objects.filter(entity_type=entity_type, decision=PiiReviewDecision.CONFIRMED)
    dismissed = PiiEntityReview.objects.filter(entity_type=entity_type, decision=PiiReviewDecision.DISMISSED)
    found = PiiFinding.objects.filter(entity_type=entity_type, scan__status=PiiScanStatus.COMPLETED)
    return DatasetVersion.objects.filter(
        Q(pk__in=confirmed.values("version")) | (Q(pk__in=found.values("scan__version")) & ~Q(pk__in=dismissed.values("version")))
    )
