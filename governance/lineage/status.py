"""One effective status, read the same way by every path.

An asset's status is stored (``LineageNode.effective_status`` and the status
part of its effective facts) and refreshed when something upstream changes.
Two facts are bound to time rather than to a change: an expiry date, and the
end of an admin's quarantine exception. The hourly job applies both to the
stored status, but nothing may wait for it: from the instant one of them
passes, every reader (the API and the console, ``decide``, simulation,
downloads) sees the asset as expired or quarantined. ``status_now`` is that
rule; ``dataset_version_status`` applies it to a dataset version as the API
and the console show it; ``valid_until`` says until when a decision built on
the stored facts may be trusted (the decision cache ends it there).

A dataset version's expiry is a date: the data may be used through that day
(in ``TIME_ZONE``) and expires at the start of the next, as the hourly job has
always applied it (``expires_at < today``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from django.utils import timezone
from django.utils.dateparse import parse_datetime

ACTIVE = "active"
EXPIRED = "expired"
QUARANTINED = "quarantined"

NOTE_EXCEPTION_LAPSED = "a quarantine exception has lapsed; the refresh is pending"
NOTE_EXPIRED = "its expiry date has passed; the refresh is pending"
NOTE_UPSTREAM_EXPIRED = "data upstream of it has expired; the refresh is pending"
NOTE_UNSYNCED = "its lineage is being brought up to date"


def expiry_instant(expires_on: dt.date) -> dt.datetime:
    """The instant a dataset version with expiry date ``expires_on`` expires (UTC).

    The start of the following day in the configured time zone: the date is
    the last day the data may be used.
    """
    following = dt.datetime.combine(expires_on + dt.timedelta(days=1), dt.time.min)
    return timezone.make_aware(following, timezone.get_default_timezone()).astimezone(dt.UTC)


def _instant(value: Any) -> dt.datetime | None:
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return value
    parsed = parse_datetime(str(value))
    if parsed is None or parsed.tzinfo is None:
        # Unreadable means "already passed": fail closed.
        return dt.datetime.min.replace(tzinfo=dt.UTC)
    return parsed


def status_now(
    stored_status: str,
    status_summary: Mapping[str, Any] | None,
    *,
    own_expiry: Any = None,
    now: dt.datetime | None = None,
) -> tuple[str, str]:
    """The status at ``now`` from the stored one: (status, a note when time changed it).

    ``status_summary`` is the stored summary (``exceptions_expire_at``,
    ``expires_at``: the earliest expiry of the asset and everything upstream
    that no exception covers); ``own_expiry`` the asset's own expiry instant,
    which makes a passed expiry read ``expired`` rather than ``quarantined``.
    """
    if stored_status != ACTIVE:
        return stored_status, ""
    now = now or timezone.now()
    own = _instant(own_expiry)
    if own is not None and own <= now:
        return EXPIRED, NOTE_EXPIRED
    summary = status_summary or {}
    lapse = _instant(summary.get("exceptions_expire_at"))
    if lapse is not None and lapse <= now:
        return QUARANTINED, NOTE_EXCEPTION_LAPSED
    expiry = _instant(summary.get("expires_at"))
    if expiry is not None and expiry <= now:
        return QUARANTINED, NOTE_UPSTREAM_EXPIRED
    return ACTIVE, ""


def valid_until(status_summary: Mapping[str, Any] | None, *, own_expiry: Any = None) -> dt.datetime | None:
    """The next instant at which time alone changes this status (None: never)."""
    summary = status_summary or {}
    instants = [
        instant
        for instant in (
            _instant(own_expiry),
            _instant(summary.get("exceptions_expire_at")),
            _instant(summary.get("expires_at")),
        )
        if instant is not None
    ]
    return min(instants) if instants else None


def own_expiry_of(node_id: int, expiries: Mapping[str, Any] | None) -> Any:
    """A node's own expiry instant from its stored ``expiries`` block."""
    return (expiries or {}).get(str(node_id))


def node_status_now(node: Any, *, now: dt.datetime | None = None) -> str:
    """A lineage node's status at ``now`` from its stored columns (no query):
    what every list, picture and report shows, so none waits for the hourly job."""
    part = node.effective_quarantine or {}
    status, _ = status_now(
        str(node.effective_status),
        part.get("status_summary"),
        own_expiry=own_expiry_of(node.pk, part.get("expiries")),
        now=now,
    )
    return status


def dataset_version_status(version: Any, *, now: dt.datetime | None = None) -> str:
    """A dataset version's effective status: active, revoked, expired or quarantined.

    Its own status when that is not active; its own expiry date at the
    instant it passes; otherwise its lineage node's status at ``now`` (a
    revoked or expired original upstream quarantines a redacted copy). The
    node's stored status comes from ``with_lineage_status`` when the queryset
    was annotated (one query for a whole page), else one read. A node that is
    missing or behind the version's facts is brought up to date first.
    """
    from governance.lineage.explain import effective_facts
    from governance.lineage.graph import node_for_dataset_version

    if version.status != ACTIVE:
        return str(version.status)
    now = now or timezone.now()
    if version.expires_at is not None and expiry_instant(version.expires_at) <= now:
        return EXPIRED
    stored = getattr(version, "lineage_status_part", None)
    source_version = getattr(version, "lineage_source_version", None)
    if stored is not None and source_version == version.facts_version:
        status, _ = status_now(
            getattr(version, "lineage_status", None) or ACTIVE,
            stored.get("status_summary"),
            now=now,
        )
        return status
    return effective_facts(node=node_for_dataset_version(version)).status


def with_lineage_status(queryset: Any) -> Any:
    """Annotate dataset versions with their lineage node's stored status (for lists)."""
    from django.db.models import CharField, OuterRef, Subquery
    from django.db.models.functions import Cast

    from governance.models.lineage import AssetKind, LineageNode

    nodes = LineageNode.objects.filter(
        kind=AssetKind.DATASET_VERSION, reference=Cast(OuterRef("pk"), output_field=CharField())
    )
    return queryset.annotate(
        lineage_status=Subquery(nodes.values("effective_status")[:1]),
        lineage_status_part=Subquery(nodes.values("effective_quarantine")[:1]),
        lineage_source_version=Subquery(nodes.values("source_version")[:1]),
    )
