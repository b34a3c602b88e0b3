"""Helpers shared by the governance management commands."""

from __future__ import annotations

from django.contrib.auth.models import User
from django.core.management.base import CommandError


def acting_user(username: str | None) -> User:
    """The user a command acts as: ``--user``, else the ``admin`` superuser."""
    users = User.objects
    if username:
        user = users.filter(username=username).first()
        if user is None:
            raise CommandError(f"no user named {username!r}")
        return user
    user = users.filter(is_superuser=True).order_by("pk").first()
    if user is None:
        raise CommandError("no superuser exists: create one, or pass --user")
    return user
