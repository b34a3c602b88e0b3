"""Lineage workflows: keeping dataset versions in the graph, redactions, quarantine exceptions.

The catalog services (``governance.services``) call the ``on_*`` hooks inside
their own transactions, so a fact change and its consequences downstream
commit together. ``do_lineage_housekeeping`` runs hourly with the expiry task:
it applies lapsed exceptions and re-syncs any dataset version whose facts
changed without the hook (the net under the hooks, so no change is lost).
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from django.contrib.auth.models import AnonymousUser
from django.db import transaction
from django.utils import timezone

from governance.choices import PII_SCAN_INCOMPLETE
from governance.lineage import graph
from governance.lineage.facts import LicenceTerms, OwnFacts
from governance.lineage.propagation import RefreshResult, lock_graph, refresh
from governance.lineage.queries import walk
from governance.lineage.status import expiry_instant
from governance.models import DatasetVersion
from governance.models.audit import record_audit_event
from governance.models.lineage import (
    AssetKind,
    EdgeRelation,
    LineageNode,
    QuarantineException,
)
from pedigree.errors import Conflict, InvalidInput, PermissionDenied
from pedigree.roles import is_admin
from pedigree.types import Actor

logger = logging.getLogger(__name__)

User = Actor

ACTION_QUARANTINED = "lineage.quarantined"
ACTION_RELEASED = "lineage.released"
ACTION_EXCEPTION_GRANTED = "lineage.exception_granted"
ACTION_EXCEPTION_WITHDRAWN = "lineage.exception_withdrawn"
ACTION_EXCEPTION_LAPSED = "lineage.exception_lapsed"
ACTION_REDACTION_RECORDED = "lineage.redaction_recorded"


# --- Dataset versions in the graph ---------------------------------------------------


def dataset_version_facts(version: DatasetVersion) -> OwnFacts:
    """A dataset version's own facts, read from its governance fields.

    A version whose PII scan is not complete (unscanned, scanning, scan
    failed) declares "PII scan incomplete" for its owning team: everything
    made from it inherits that, and the shipped policies deny training on it
    and serving models made from it (``policies/pii_scan.cedar``).
    """
    owner = version.dataset.owner_group.name
    return OwnFacts(
        status=version.status,
        status_reason=version.status_reason,
        pii_types=tuple(version.pii_types or ()),
        pii_scan_incomplete=(owner,) if version.pii_status in PII_SCAN_INCOMPLETE else (),
        licences=(
            LicenceTerms(
                id=version.licence,
                training=version.permits_training,
                commercial_use=version.permits_commercial_use,
                attribution=version.requires_attribution,
                share_alike=version.requires_share_alike,
                holder=version.copyright_holder,
            ),
        ),
        owners=(owner,),
        allowed_purposes=tuple(version.allowed_purposes or ()),
        residency_regions=tuple(version.residency_regions or ()),
        expires_at=expiry_instant(version.expires_at).isoformat() if version.expires_at else None,
    )


def sync_dataset_version(version: DatasetVersion) -> LineageNode:
    """Register (or update) a dataset version's node and its ``derived_from`` edge."""
    node, _ = _sync(version)
    return node


def _sync(version: DatasetVersion) -> tuple[LineageNode, RefreshResult]:
    # Read the version afresh: callers may hold an instance whose
    # facts_version is still an F() expression.
    version = DatasetVersion.objects.select_related("dataset__owner_group", "derived_from").get(pk=version.pk)
    with transaction.atomic():
        node, result = graph.upsert_asset(
            kind=AssetKind.DATASET_VERSION,
            reference=str(version.pk),
            label=f"{version.dataset.name} v{version.number}",
            facts=dataset_version_facts(version),
            source_version=version.facts_version,
        )
        if version.derived_from is not None:
            parent = graph.node_for_dataset_version(version.derived_from)
            if not node.upstream_edges.filter(upstream=parent, relation=EdgeRelation.DERIVED_FROM).exists():
                graph.add_edge(upstream=parent, downstream=node, relation=EdgeRelation.DERIVED_FROM)
    node.refresh_from_db()
    return node, result


def on_dataset_version_changed(version: DatasetVersion, *, actor: User | None, reason: str = "") -> RefreshResult:
    """Hook for catalog services: a version was created or its facts changed
    (PII confirmed, licence corrected, revoked, expired).

    Syncs its node, refreshes everything downstream, and records an audit
    event naming the assets it quarantined or released. Runs in the caller's
    transaction, so the change and its consequences commit together.
    """
    with transaction.atomic():
        node, result = _sync(version)
        _audit_statuses(actor=actor, node=node, reason=reason, result=result)
    return result


def _audit_statuses(*, actor: User | None, node: LineageNode, reason: str, result: RefreshResult) -> None:
    if result.quarantined:
        record_audit_event(
            actor=actor,
            action=ACTION_QUARANTINED,
            target=node,
            target_label=str(node),
            reason=reason,
            changes={"quarantined": result.quarantined, "count": len(result.quarantined)},
        )
    if result.released:
        record_audit_event(
            actor=actor,
            action=ACTION_RELEASED,
            target=node,
            target_label=str(node),
            reason=reason,
            changes={"released": result.released, "count": len(result.released)},
        )


def sync_stale_dataset_versions() -> list[int]:
    """Re-sync every dataset version whose facts changed since its node was synced.

    The safety net under the hooks: anything that changed a version's facts
    (and bumped ``facts_version``) without calling the hook is caught here.
    """
    synced = {
        reference: (source_version, own_expiry)
        for reference, source_version, own_expiry in LineageNode.objects.filter(
            kind=AssetKind.DATASET_VERSION
        ).values_list("reference", "source_version", "own_facts__expires_at")
    }
    # A node synced before expiry instants were facts lacks its version's
    # expiry: re-sync it too, so the instant reaches what is downstream.
    stale = [
        pk
        for pk, facts_version, expires_at in DatasetVersion.objects.order_by("pk").values_list(
            "pk", "facts_version", "expires_at"
        )
        if synced.get(str(pk), (None, None))[0] != facts_version
        or (expires_at is not None and synced[str(pk)][1] is None)
    ]
    for pk in stale:
        with transaction.atomic():
            on_dataset_version_changed(DatasetVersion.objects.get(pk=pk), actor=None, reason="lineage re-sync")
    return stale


def ensure_synced(node: LineageNode) -> LineageNode:
    """For a dataset version node: re-sync it first if its version's facts moved on."""
    if node.kind != AssetKind.DATASET_VERSION:
        return node
    current = DatasetVersion.objects.filter(pk=int(node.reference)).values_list("facts_version", flat=True).first()
    if current is None or current == node.source_version:
        return node
    with transaction.atomic():
        on_dataset_version_changed(DatasetVersion.objects.get(pk=int(node.reference)), actor=None, reason="lineage re-sync")
    node.refresh_from_db()
    return node


# --- Redaction ------------------------------------------------------------------------


def do_record_redaction(
    *,
    actor: User | None,
    source: DatasetVersion,
    redacted: DatasetVersion,
    removed_pii_types: list[str],
    run_id: str | None = None,
) -> LineageNode:
    """Record that ``redacted`` was made from ``source`` by removing ``removed_pii_types`` (``*``: all).

    The edge passes licences, owners, purposes and residency on, but not the
    removed PII types; the redacted version's own PII is what its rescan found.
    The PII service names only the types it actually redacted, and narrows the
    list once the rescan is done (``do_narrow_redaction``).
    With ``run_id`` the redaction run is added as a node that produced it.
    """
    if source.pk == redacted.pk:
        raise InvalidInput("a version cannot be redacted from itself", field="redacted")
    if not removed_pii_types:
        raise InvalidInput("name the PII types the redaction removed (or '*')", field="removed_pii_types")
    with transaction.atomic():
        source_node = graph.node_for_dataset_version(source)
        redacted_node = graph.node_for_dataset_version(redacted)
        graph.add_edge(
            upstream=source_node,
            downstream=redacted_node,
            relation=EdgeRelation.DERIVED_FROM,
            removes_pii_types=removed_pii_types,
        )
        if run_id:
            run = graph.register_asset(kind=AssetKind.RUN, reference=run_id, label=f"redaction of {source_node.label}")
            graph.add_edge(upstream=run, downstream=redacted_node, relation=EdgeRelation.PRODUCED_BY)
        record_audit_event(
            actor=actor,
            action=ACTION_REDACTION_RECORDED,
            target=redacted_node,
            target_label=str(redacted_node),
            changes={"source": source_node.label, "removed_pii_types": sorted(removed_pii_types)},
        )
    redacted_node.refresh_from_db()
    return redacted_node


def do_narrow_redaction(
    *, actor: User | None, source: DatasetVersion, redacted: DatasetVersion, still_found: list[str]
) -> LineageNode:
    """The redacted copy's rescan still finds ``still_found``: its redaction edge
    stops only the types it removed that the rescan did not find again, so the
    source's types that survived keep propagating (with their path to the source).
    """
    with transaction.atomic():
        source_node = graph.node_for_dataset_version(source)
        redacted_node = graph.node_for_dataset_version(redacted)
        edge = redacted_node.upstream_edges.filter(upstream=source_node, relation=EdgeRelation.DERIVED_FROM).first()
        if edge is None or not edge.removes_pii_types:
            return redacted_node
        before = sorted(edge.removes_pii_types)
        after = sorted(set(before) - set(still_found))
        if after != before:
            graph.add_edge(
                upstream=source_node, downstream=redacted_node, relation=EdgeRelation.DERIVED_FROM, removes_pii_types=after
            )
            record_audit_event(
                actor=actor,
                action=ACTION_REDACTION_RECORDED,
                target=redacted_node,
                target_label=str(redacted_node),
                reason="the rescan of the redacted copy still finds " + ", ".join(sorted(set(before) & set(still_found))),
                changes={"source": source_node.label, "removed_pii_types": [before, after]},
            )
    redacted_node.refresh_from_db()
    return redacted_node


def record_run(*, run_id: str, label: str, outputs: list[LineageNode]) -> LineageNode:
    """Add a run (ingest, redaction, fine-tune) as a node that produced ``outputs``.

    Runs carry no facts and their ``produced_by`` edges pass none: inputs are
    joined to outputs directly (``derived_from``, ``trained_on``), so facts
    are never counted twice.
    """
    with transaction.atomic():
        run = graph.register_asset(kind=AssetKind.RUN, reference=run_id, label=label)
        for output in outputs:
            graph.add_edge(upstream=run, downstream=output, relation=EdgeRelation.PRODUCED_BY)
    return run


# --- Quarantine exceptions --------------------------------------------------------------


def do_grant_quarantine_exception(
    *,
    actor: User,
    node: LineageNode,
    cause: LineageNode,
    reason: str,
    expires_at: dt.datetime,
) -> QuarantineException:
    """Let ``node`` be used although ``cause`` upstream is revoked or expired, until ``expires_at``.

    Admins only; needs a reason and a future expiry; ``cause`` must be
    upstream of ``node``. Recorded in the audit log; the node (and what is
    downstream of it) is refreshed in the same transaction.
    """
    if isinstance(actor, AnonymousUser) or not is_admin(actor):
        raise PermissionDenied("only an admin may record a quarantine exception", field="node")
    if not reason.strip():
        raise InvalidInput("a reason is required for a quarantine exception", field="reason")
    if timezone.is_naive(expires_at):
        expires_at = timezone.make_aware(expires_at)
    if expires_at <= timezone.now():
        raise InvalidInput(f"the exception's expiry {expires_at.isoformat()} is not in the future", field="expires_at")
    if cause.pk == node.pk or cause.pk not in walk([node.pk], direction="up"):
        raise InvalidInput(f"{cause} is not upstream of {node}: nothing to except", field="cause")
    with transaction.atomic():
        lock_graph()
        if QuarantineException.objects.filter(
            node=node, cause=cause, withdrawn_at__isnull=True, expires_at__gt=timezone.now()
        ).exists():
            raise Conflict(f"{node} already has an exception in force for {cause}", field="cause")
        exception = QuarantineException.objects.create(
            node=node, cause=cause, reason=reason.strip(), expires_at=expires_at, granted_by=actor
        )
        refresh([node.pk])
        record_audit_event(
            actor=actor,
            action=ACTION_EXCEPTION_GRANTED,
            target=node,
            target_label=str(node),
            reason=reason,
            changes={"cause": str(cause), "expires_at": expires_at.isoformat(), "exception": exception.pk},
        )
    return exception


def do_withdraw_quarantine_exception(*, actor: User, exception: QuarantineException, reason: str) -> QuarantineException:
    """End an exception now: the node is quarantined again if its cause still holds."""
    if not is_admin(actor):
        raise PermissionDenied("only an admin may withdraw a quarantine exception", field="exception")
    if not reason.strip():
        raise InvalidInput("a reason is required to withdraw an exception", field="reason")
    with transaction.atomic():
        lock_graph()
        exception = QuarantineException.objects.select_for_update().get(pk=exception.pk)
        if exception.withdrawn_at is not None:
            raise Conflict(f"exception {exception.pk} was already withdrawn", field="exception")
        exception.withdrawn_at = timezone.now()
        exception.withdrawn_by = actor  # type: ignore[assignment]  # an admin: checked above
        exception.save(update_fields=["withdrawn_at", "withdrawn_by"])
        refresh([exception.node_id])
        record_audit_event(
            actor=actor,
            action=ACTION_EXCEPTION_WITHDRAWN,
            target=exception.node,
            target_label=str(exception.node),
            reason=reason,
            changes={"exception": exception.pk},
        )
    return exception


def do_lapse_quarantine_exceptions(*, now: dt.datetime | None = None) -> list[int]:
    """Apply every exception whose expiry has passed: its node is quarantined again."""
    now = now or timezone.now()
    lapsed = list(
        QuarantineException.objects.filter(lapse_processed=False, withdrawn_at__isnull=True, expires_at__lte=now)
    )
    if not lapsed:
        return []
    with transaction.atomic():
        lock_graph()
        QuarantineException.objects.filter(pk__in=[exc.pk for exc in lapsed]).update(lapse_processed=True)
        refresh([exc.node_id for exc in lapsed], now=now)
        for exc in lapsed:
            record_audit_event(
                actor=None,
                action=ACTION_EXCEPTION_LAPSED,
                target=exc.node,
                target_label=str(exc.node),
                reason=f"exception {exc.pk} expired at {exc.expires_at.isoformat()}",
                changes={"exception": exc.pk},
            )
    return [exc.pk for exc in lapsed]


def do_lineage_housekeeping(*, now: dt.datetime | None = None) -> dict[str, Any]:
    """The hourly pass: lapse expired exceptions, re-sync versions whose facts moved on."""
    return {"lapsed_exceptions": do_lapse_quarantine_exceptions(now=now), "resynced": sync_stale_dataset_versions()}


def do_revoke_asset(*, actor: User, node: LineageNode, reason: str) -> LineageNode:
    """Revoke the asset behind a node. Dataset versions go through the catalog's revoke."""
    if node.kind != AssetKind.DATASET_VERSION:
        raise InvalidInput(
            f"{node} is a {node.kind}: only dataset versions are revoked here; models and endpoints "
            "are quarantined by what they were made from",
            field="node",
        )
    from governance.services import do_revoke_dataset_version

    version = DatasetVersion.objects.select_related("dataset__owner_group").get(pk=int(node.reference))
    do_revoke_dataset_version(actor=actor, version=version, reason=reason)
    node.refresh_from_db()
    return node
