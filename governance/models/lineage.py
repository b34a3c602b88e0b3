"""The lineage graph: one node per asset, typed edges, quarantine exceptions.

Nodes are generic (``kind`` + ``reference``) so that every app can put its
assets in the graph: dataset versions here, model versions and endpoints from
``customization`` and ``serving``, and the runs that made them. Edges point
from the upstream asset to the downstream one and carry a relation.

Nothing but ``governance.lineage.graph`` (and the propagation it calls) writes
these tables; read them freely.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import F, Q


class AssetKind(models.TextChoices):
    """What a lineage node stands for; ``reference`` identifies it within its kind."""

    DATASET_VERSION = "dataset_version", "Dataset version"
    MODEL_VERSION = "model_version", "Model version"
    ENDPOINT = "endpoint", "Endpoint"
    RUN = "run", "Run"


class EdgeRelation(models.TextChoices):
    """How the downstream asset relates to the upstream one.

    ``derived_from``, ``trained_on``, ``base_model`` and ``deployed_as`` carry
    facts downstream (see ``governance.lineage.facts``); ``evaluated_on`` and
    ``produced_by`` are provenance only: they show in queries and impact
    reports but pass no facts.
    """

    DERIVED_FROM = "derived_from", "derived from"
    TRAINED_ON = "trained_on", "trained on"
    EVALUATED_ON = "evaluated_on", "evaluated on"
    BASE_MODEL = "base_model", "base model"
    DEPLOYED_AS = "deployed_as", "deployed as"
    PRODUCED_BY = "produced_by", "produced by"


PROPAGATING_RELATIONS = frozenset(
    {
        EdgeRelation.DERIVED_FROM.value,
        EdgeRelation.TRAINED_ON.value,
        EdgeRelation.BASE_MODEL.value,
        EdgeRelation.DEPLOYED_AS.value,
    }
)


class LineageStatus(models.TextChoices):
    """An asset's status: its own (active, revoked, expired) or inherited (quarantined)."""

    ACTIVE = "active", "Active"
    QUARANTINED = "quarantined", "Quarantined"
    REVOKED = "revoked", "Revoked"
    EXPIRED = "expired", "Expired"


OWN_STATUSES = frozenset({LineageStatus.ACTIVE.value, LineageStatus.REVOKED.value, LineageStatus.EXPIRED.value})

# The status part of the effective facts lives in its own column, so that a
# revocation reaching thousands of assets rewrites a few bytes of each, not
# their whole explained facts.
STATUS_BLOCKS = ("quarantine", "excepted", "expiries", "status", "status_reason", "status_summary")
STATUS_SUMMARY_KEYS = ("status", "quarantined", "exceptions_expire_at", "expires_at")


def merge_effective(facts: dict[str, Any], status_part: dict[str, Any]) -> dict[str, Any]:
    """The effective facts as one document, from the two stored columns."""
    merged = {**facts, **status_part}
    if "summary" in facts or "status_summary" in status_part:
        merged["summary"] = {**facts.get("summary", {}), **status_part.get("status_summary", {})}
    return merged


def split_effective(merged: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The inverse of ``merge_effective``: (facts column, status column)."""
    status_part = {block: merged[block] for block in STATUS_BLOCKS if block in merged}
    facts = {block: value for block, value in merged.items() if block not in STATUS_BLOCKS}
    if "summary" in facts:
        facts["summary"] = {key: value for key, value in facts["summary"].items() if key not in STATUS_SUMMARY_KEYS}
    return facts, status_part


class LineageGraphState(models.Model):
    """The single row (id=1) that serialises graph writes and counts them.

    Every writer locks it first, so two concurrent edge additions cannot close
    a cycle between them and two refreshes cannot lose each other's updates.
    ``graph_version`` grows with every change, for caches of whole-graph views.
    """

    graph_version = models.PositiveBigIntegerField(default=0)

    def __str__(self) -> str:
        return f"lineage graph at version {self.graph_version}"


class LineageNode(models.Model):
    """One asset in the lineage graph, with its own and its effective facts.

    ``own_facts`` are what the asset itself declares (see
    ``governance.lineage.facts.OwnFacts``); ``effective_facts`` combine them
    with everything upstream and are stored, refreshed whenever something
    upstream changes. ``facts_version`` grows with each change of the
    effective facts so that caches know when to refresh. ``source_version`` is
    the owning record's own fact version when it was last synced (e.g.
    ``DatasetVersion.facts_version``), to detect a missed sync.
    """

    kind = models.CharField(max_length=32, choices=AssetKind.choices)
    reference = models.CharField(max_length=200, help_text="Identifies the asset within its kind (e.g. a primary key).")
    label = models.CharField(max_length=255, help_text="How people name the asset, e.g. claims-2024 v3.")
    own_status = models.CharField(max_length=16, choices=LineageStatus.choices, default=LineageStatus.ACTIVE)
    own_facts = models.JSONField(default=dict, blank=True)
    effective_status = models.CharField(max_length=16, choices=LineageStatus.choices, default=LineageStatus.ACTIVE)
    effective_facts = models.JSONField(default=dict, blank=True)
    effective_quarantine = models.JSONField(
        default=dict, blank=True, help_text="The status part of the effective facts (see STATUS_BLOCKS)."
    )
    facts_version = models.PositiveBigIntegerField(default=1)
    source_version = models.PositiveBigIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["kind", "label"]
        constraints = [
            models.UniqueConstraint(fields=["kind", "reference"], name="unique_lineage_asset"),
            models.CheckConstraint(
                condition=Q(own_status__in=sorted(OWN_STATUSES)), name="lineage_own_status_valid"
            ),
        ]
        indexes = [models.Index(fields=["effective_status"])]

    def __str__(self) -> str:
        return f"{self.kind} {self.label}"

    @property
    def facts(self) -> dict[str, Any]:
        """The effective facts as one document (both stored parts merged)."""
        return merge_effective(self.effective_facts, self.effective_quarantine)


class LineageEdge(models.Model):
    """A typed edge from an upstream asset to a downstream one.

    ``removes_pii_types`` makes the edge a redaction edge: the PII types it
    names (``*`` for all) do not pass to the downstream asset, whose own PII is
    what its rescan finds. Every other fact passes as the relation allows.
    """

    upstream = models.ForeignKey(LineageNode, on_delete=models.PROTECT, related_name="downstream_edges")
    downstream = models.ForeignKey(LineageNode, on_delete=models.PROTECT, related_name="upstream_edges")
    relation = models.CharField(max_length=32, choices=EdgeRelation.choices)
    removes_pii_types = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["upstream", "downstream", "relation"], name="unique_lineage_edge"),
            models.CheckConstraint(condition=~Q(upstream=F("downstream")), name="lineage_edge_not_a_loop"),
        ]
        indexes = [
            models.Index(fields=["upstream", "downstream"], name="lineage_edge_up_down"),
            models.Index(fields=["downstream", "upstream"], name="lineage_edge_down_up"),
        ]

    def __str__(self) -> str:
        return f"{self.downstream_id} {self.relation} {self.upstream_id}"


class QuarantineException(models.Model):
    """An admin's recorded decision to let ``node`` be used although ``cause``
    (a revoked or expired asset upstream of it) would quarantine it.

    It holds until ``expires_at`` or until withdrawn; then the node is
    quarantined again (the hourly task refreshes it, and readers fail closed
    in between).
    """

    node = models.ForeignKey(LineageNode, on_delete=models.PROTECT, related_name="quarantine_exceptions")
    cause = models.ForeignKey(LineageNode, on_delete=models.PROTECT, related_name="+")
    reason = models.TextField()
    expires_at = models.DateTimeField()
    granted_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    granted_at = models.DateTimeField(auto_now_add=True)
    withdrawn_at = models.DateTimeField(null=True, blank=True)
    withdrawn_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", null=True, blank=True
    )
    lapse_processed = models.BooleanField(default=False, help_text="The expiry has been applied to the graph.")

    class Meta:
        ordering = ["-granted_at"]
        constraints = [
            models.CheckConstraint(condition=~Q(node=F("cause")), name="quarantine_exception_not_self"),
        ]
        indexes = [models.Index(fields=["node", "withdrawn_at"])]

    def __str__(self) -> str:
        return f"exception for node {self.node_id} despite {self.cause_id} until {self.expires_at:%Y-%m-%d}"
