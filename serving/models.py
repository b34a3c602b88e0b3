"""Serving: the consumers that call model endpoints (endpoints come later)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models

from governance.choices import Purpose, Region
from governance.pii.entity_types import describe_unknown, unknown_entity_types
from pedigree import roles
from pedigree.types import Actor


def is_admin(user: Actor | None) -> bool:
    """Platform admins manage consumers (superusers and the ``admins`` group;
    ``is_staff`` alone is a console login, not admin: see ``pedigree.roles``)."""
    return roles.is_admin(user)


class ConsumerQuerySet(models.QuerySet["Consumer"]):
    """Reads of consumers scoped to what a user may do with them."""

    def restrict(self, user: Actor, action: str = "view") -> ConsumerQuerySet:
        """Consumers on which ``user`` may perform ``action``.

        - ``view``: admins and auditors see every consumer; anyone else only the consumers
          they own (an application team reads its own settings and what the
          policies let it call).
        - ``change`` and ``delete``: admins only. A consumer's clearances and
          purposes are what the policies trust, so its owner may not raise them.
        """
        if not user.is_authenticated:
            return self.none()
        if is_admin(user) or (action == "view" and roles.reads_everything(user)):
            return self.all()  # auditors read every consumer, change none
        if action == "view":
            return self.filter(owner=user)  # type: ignore[misc]  # authenticated: a User
        if action in {"change", "delete"}:
            return self.none()
        raise ValueError(f"unknown consumer action {action!r}")


class Consumer(models.Model):
    """An application or service that calls model endpoints, as the policies see it.

    Its attributes are what the policies read: the teams it belongs to, the PII
    types it is cleared to receive, the purposes it has declared, the region it
    serves, and whether its use is commercial. ``facts_version`` is bumped on
    every save so cached decisions about it are never reused after a change.
    """

    name = models.SlugField(max_length=100, unique=True, help_text="Unique slug, e.g. web-frontend.")
    description = models.TextField(blank=True)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="owned_consumers",
        null=True,
        blank=True,
        help_text="The person accountable for this consumer.",
    )
    groups = models.JSONField(default=list, blank=True, help_text="Names of the teams it belongs to.")
    pii_clearances = models.JSONField(
        default=list, blank=True, help_text="PII entity types it may receive, e.g. PERSON, US_SSN."
    )
    purposes = models.JSONField(default=list, blank=True, help_text="Purposes it has declared.")
    region = models.CharField(max_length=16, choices=Region.choices, help_text="Where it serves its users.")
    commercial = models.BooleanField(default=False, help_text="Whether it uses models commercially.")
    facts_version = models.PositiveIntegerField(default=1, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = ConsumerQuerySet.as_manager()

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        """Lists of non-empty strings; purposes from the catalog's vocabulary; clearances the scanner's entity types.

        A clearance the scanner never reports ("person", "BOGUS") would match no
        fact: it must be refused, not stored as if it meant something.
        """
        errors: dict[str, str] = {}
        for name in ("groups", "pii_clearances", "purposes"):
            value = getattr(self, name)
            if not isinstance(value, list) or not all(isinstance(item, str) and item for item in value):
                errors[name] = f"{name} must be a list of non-empty strings"
        if "purposes" not in errors:
            unknown = sorted(set(self.purposes) - set(Purpose.values))
            if unknown:
                errors["purposes"] = f"unknown purpose {unknown[0]!r}: use {', '.join(Purpose.values)}"
        if "pii_clearances" not in errors:
            unknown_types = unknown_entity_types(self.pii_clearances)
            if unknown_types:
                errors["pii_clearances"] = describe_unknown(unknown_types)
        if errors:
            raise ValidationError(errors)

    def save(self, *args: Any, **kwargs: Any) -> None:
        """Bump ``facts_version`` on every change, so decision caches refresh."""
        if not self._state.adding:
            self.facts_version = (self.facts_version or 0) + 1
            update_fields = kwargs.get("update_fields")
            if update_fields is not None:
                kwargs["update_fields"] = {*update_fields, "facts_version", "updated_at"}
        super().save(*args, **kwargs)
