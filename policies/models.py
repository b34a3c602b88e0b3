"""The decision log: what the policy engine decided, for whom, and why."""

from __future__ import annotations

import hashlib
from typing import Any

from django.db import models


class DecisionOutcome(models.TextChoices):
    """What the engine answered; an error always denies."""
    ALLOW = "allow", "Allowed"
    DENY = "deny", "Denied"
    ERROR = "error", "Error (denied)"


def detail_digest(context: str, policies: str, facts: str, reason: str) -> str:
    """The identity of a decision's explanation: sha256 over its JSON parts and sentence."""
    digest = hashlib.sha256()
    for part in (context, policies, facts, reason):
        digest.update(part.encode())
        digest.update(b"\0")
    return digest.hexdigest()


class DecisionDetail(models.Model):
    """What a decision said: the deciding policies, the triggering facts, the sentence.

    Stored once per distinct explanation and addressed by its content
    (``detail_digest``). A consumer calling the same endpoint all day asks the
    same question each time; its log rows stay small and all point to one
    detail. Written by the decision log in the same transaction as the rows
    that point to it; never changed.
    """

    digest = models.CharField(max_length=64, primary_key=True)
    context = models.JSONField(default=dict, blank=True)
    policies = models.JSONField(default=list, blank=True, help_text="The deciding policies (@id).")
    facts = models.JSONField(default=dict, blank=True, help_text="The facts that triggered them.")
    reason = models.TextField()

    def __str__(self) -> str:
        return self.reason[:80]


class PolicyDecision(models.Model):
    """One logged decision of the policy engine.

    Written in bulk, off the request path (see ``policies.decision_log.DecisionLog``).
    ``inputs_digest`` identifies the exact facts and context decided on and
    ``policy_digest`` the policy files in force, so a decision can be replayed
    and explained later; ``detail`` holds what it said (shared by every
    decision that said the same). Which decisions are kept is configurable
    (``PEDIGREE_DECISION_LOG``: all, denials or sampled).
    """

    decided_at = models.DateTimeField(db_index=True)
    principal = models.CharField(max_length=200, help_text='e.g. Consumer::web-frontend')
    action = models.CharField(max_length=32)
    resource = models.CharField(max_length=300, help_text='e.g. DatasetVersion::claims-2024/v1')
    outcome = models.CharField(max_length=8, choices=DecisionOutcome.choices)
    cached = models.BooleanField(default=False, help_text="Answered from the decision cache.")
    inputs_digest = models.CharField(max_length=64, blank=True)
    policy_digest = models.CharField(max_length=64, blank=True)
    # Not indexed: rows are read by time, principal or resource and joined to
    # their detail, never looked up by it, and an index on a random digest
    # would make every insert several times dearer. Details are never deleted.
    detail = models.ForeignKey(DecisionDetail, on_delete=models.PROTECT, related_name="decisions", db_index=False)

    class Meta:
        ordering = ["-decided_at", "-id"]
        # Few indexes: every decision is an insert. Time, and who/what it was about.
        indexes = [
            models.Index(fields=["principal", "decided_at"]),
            models.Index(fields=["resource", "decided_at"]),
        ]

    def __str__(self) -> str:
        return f"{self.outcome}: {self.principal} {self.action} {self.resource}"

    @property
    def allowed(self) -> bool:
        """Whether the logged decision allowed the action."""
        return self.outcome == DecisionOutcome.ALLOW

    @property
    def context(self) -> dict[str, Any]:
        """The context decided on (e.g. the declared purpose)."""
        return self.detail.context  # type: ignore[no-any-return]

    @property
    def policies(self) -> list[str]:
        """The deciding policies (@id)."""
        return self.detail.policies  # type: ignore[no-any-return]

    @property
    def facts(self) -> dict[str, Any]:
        """The facts that triggered the deciding policies."""
        return self.detail.facts  # type: ignore[no-any-return]

    @property
    def reason(self) -> str:
        """The sentence the decision gave."""
        return self.detail.reason
