"""Type aliases shared across apps."""

from __future__ import annotations

from django.contrib.auth.models import AnonymousUser, User

# Pedigree uses Django's default user model; an actor may be anonymous (refused
# by the services) or ``None`` for the system itself.
Actor = User | AnonymousUser

__all__ = ["Actor", "User"]
