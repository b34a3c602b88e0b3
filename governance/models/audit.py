"""The hash-chained audit log.

Every recorded action appends one ``AuditEvent`` whose hash covers its own
content and the previous event's hash, so that any edit, deletion or
reordering of stored events breaks the chain and ``verify_chain`` finds it.
Appends are serialised through the single ``AuditChainHead`` row, locked for
the rest of the writing transaction.

Lock order (the one rule that keeps governed writes free of deadlocks):
a governed write takes the lineage graph row (``LineageGraphState``), then the
audit chain head, and only then the rows it changes (datasets, versions,
scans, nodes). ``lock_for_governed_write`` takes the two global rows in that
order; every service calls it first in its transaction, and
``record_audit_event`` calls it too, so the audit head is never held without
the graph row, whatever a service forgets.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import orjson
from django.conf import settings
from django.db import models, transaction
from django.utils import timezone

from governance.models.lineage import LineageGraphState
from pedigree.types import Actor

GENESIS_HASH = "0" * 64


class AuditChainHead(models.Model):
    """The last event of the chain; one row (id=1), locked while appending."""

    last_sequence = models.PositiveBigIntegerField(default=0)
    last_hash = models.CharField(max_length=64, default=GENESIS_HASH)

    def __str__(self) -> str:
        return f"audit chain at #{self.last_sequence}"


class AuditEvent(models.Model):
    """One recorded action: who did what to which object, when and why."""

    sequence = models.PositiveBigIntegerField(unique=True)
    created_at = models.DateTimeField()
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    actor_label = models.CharField(max_length=150, help_text="Username or 'system', kept if the user goes.")
    action = models.CharField(max_length=64)
    target_type = models.CharField(max_length=64)
    target_id = models.CharField(max_length=64)
    target_label = models.CharField(max_length=255)
    reason = models.TextField(blank=True)
    changes = models.JSONField(default=dict, blank=True, help_text='{"field": [old, new]} or details.')
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64, unique=True)

    class Meta:
        ordering = ["sequence"]
        indexes = [models.Index(fields=["target_type", "target_id"])]

    def __str__(self) -> str:
        return f"#{self.sequence} {self.action} {self.target_label} by {self.actor_label}"

    def content(self) -> dict[str, Any]:
        """The fields the hash covers, as JSON values."""
        return {
            "sequence": self.sequence,
            "created_at": self.created_at.isoformat(),
            "actor": self.actor_label,
            "action": self.action,
            "target_type": self.target_type,
            "target_id": self.target_id,
            "target_label": self.target_label,
            "reason": self.reason,
            "changes": self.changes,
        }

    def compute_hash(self) -> str:
        payload = orjson.dumps(self.content(), option=orjson.OPT_SORT_KEYS)
        return hashlib.sha256(self.prev_hash.encode() + payload).hexdigest()


def lock_for_governed_write() -> None:
    """Take the two global locks of a governed write, in the documented order:
    the lineage graph row, then the audit chain head.

    Call it first inside the writing transaction, before locking any dataset,
    version, scan or node row: while one transaction holds these, no other
    governed write can hold a row it waits for. Taking them again in the same
    transaction is a no-op (PostgreSQL row locks are re-entrant); on SQLite
    the whole database is locked by the first write anyway.
    """
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("lock_for_governed_write must run inside a transaction")
    LineageGraphState.objects.select_for_update().get_or_create(pk=1)
    AuditChainHead.objects.select_for_update().get_or_create(pk=1)


def record_audit_event(
    *,
    actor: Actor | None,
    action: str,
    target: models.Model,
    target_label: str | None = None,
    reason: str = "",
    changes: dict[str, Any] | None = None,
) -> AuditEvent:
    """Append an event to the chain; must run inside the caller's transaction."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("record_audit_event must run inside a transaction")
    lock_for_governed_write()  # the graph row first, always: see the module's lock order
    head = AuditChainHead.objects.get(pk=1)
    user = actor if actor is not None and actor.is_authenticated else None
    event = AuditEvent(
        sequence=head.last_sequence + 1,
        created_at=timezone.now(),
        actor=user,
        actor_label=user.get_username() if user is not None else "system",
        action=action,
        target_type=target._meta.label_lower,
        target_id=str(target.pk),
        target_label=target_label or str(target),
        reason=reason,
        changes=orjson.loads(orjson.dumps(changes or {}, default=str)),
        prev_hash=head.last_hash,
    )
    event.hash = event.compute_hash()
    event.save()
    head.last_sequence = event.sequence
    head.last_hash = event.hash
    head.save(update_fields=["last_sequence", "last_hash"])
    return event


@dataclass(frozen=True)
class ChainReport:
    """What ``verify_chain`` found."""

    events_checked: int
    ok: bool
    problems: list[str]


def verify_chain() -> ChainReport:
    """Recompute every hash in order; report each break (edit, gap, reorder)."""
    problems: list[str] = []
    expected_prev = GENESIS_HASH
    expected_sequence = 1
    count = 0
    for event in AuditEvent.objects.order_by("sequence").iterator(chunk_size=2000):
        count += 1
        if event.sequence != expected_sequence:
            problems.append(f"event #{event.sequence}: expected sequence {expected_sequence} (events missing)")
        if event.prev_hash != expected_prev:
            problems.append(f"event #{event.sequence}: prev_hash does not match the previous event")
        if event.compute_hash() != event.hash:
            problems.append(f"event #{event.sequence}: content does not match its hash (edited)")
        expected_prev = event.hash
        expected_sequence = event.sequence + 1
    head = AuditChainHead.objects.filter(pk=1).first()
    if head is not None and count and head.last_hash != expected_prev:
        problems.append("the chain head does not match the last event (events removed from the end)")
    return ChainReport(events_checked=count, ok=not problems, problems=problems)
