"""The decision log: what the policy engine decided, for whom, and why."""

from __future__ import annotations

from django.db import models


class DecisionOutcome(models.TextChoices):
    """What the engine answered; an error always denies."""
    ALLOW = "allow", "Allowed"
    DENY = "deny", "Denied"
    ERROR = "error", "Error (denied)"


class PolicyDecision(models.Model):
    """One logged decision of the policy engine.

    Written in bulk, off the request path (see ``policies.services.DecisionLog``).
    ``inputs_digest`` identifies the exact facts and context decided on and
    ``policy_digest`` the policy files in force, so a decision can be replayed
    and explained later. Which decisions are kept is configurable
    (``PEDIGREE_DECISION_LOG``: all, denials or sampled).
    """

    decided_at = models.DateTimeField(db_index=True)
    principal = models.CharField(max_length=200, help_text='e.g. Consumer::web-frontend')
    action = models.CharField(max_length=32)
    resource = models.CharField(max_length=300, help_text='e.g. DatasetVersion::claims-2024/v1')
    context = models.JSONField(default=dict, blank=True)
    outcome = models.CharField(max_length=8, choices=DecisionOutcome.choices)
    policies = models.JSONField(default=list, blank=True, help_text="The deciding policies (@id).")
    facts = models.JSONField(default=dict, blank=True, help_text="The facts that triggered them.")
    reason = models.TextField()
    cached = models.BooleanField(default=False, help_text="Answered from the decision cache.")
    inputs_digest = models.CharField(max_length=64, blank=True)
    policy_digest = models.CharField(max_length=64, blank=True)

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
