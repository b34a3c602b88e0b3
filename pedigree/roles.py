"""Who is an admin, who is an auditor: the one definition every app uses.

``is_staff`` only lets a user sign in to the console; it grants no data.
An admin is a superuser or a member of the ``admins`` group; an auditor (a
member of ``auditors``) reads everything and changes nothing.
"""

from __future__ import annotations

from typing import Any

ADMIN_GROUP = "admins"
AUDITOR_GROUP = "auditors"


def _in_group(user: Any, name: str) -> bool:
    # Asked afresh each time (one small query): a cached answer would outlive
    # a membership just withdrawn.
    return bool(user.groups.filter(name=name).exists())


def is_admin(user: Any) -> bool:
    """A platform admin: a superuser, or a member of the ``admins`` group."""
    if user is None or not getattr(user, "is_authenticated", False) or not getattr(user, "is_active", True):
        return False
    return bool(user.is_superuser) or _in_group(user, ADMIN_GROUP)


def is_auditor(user: Any) -> bool:
    """An auditor: reads every record (data details, reports, the audit log), changes nothing."""
    if user is None or not getattr(user, "is_authenticated", False) or not getattr(user, "is_active", True):
        return False
    return _in_group(user, AUDITOR_GROUP)


def reads_everything(user: Any) -> bool:
    """Admins and auditors see every detail of every dataset (one query)."""
    if user is None or not getattr(user, "is_authenticated", False) or not getattr(user, "is_active", True):
        return False
    if user.is_superuser:
        return True
    return bool(user.groups.filter(name__in=(ADMIN_GROUP, AUDITOR_GROUP)).exists())


class RoleBackend:
    """An authentication backend that only answers permission questions:
    admins hold every console permission, auditors every ``view_*`` one.

    Add ``"pedigree.roles.RoleBackend"`` after Django's ``ModelBackend`` in
    ``AUTHENTICATION_BACKENDS`` so the console pages that still use Django's
    model permissions (policies, consumers) follow the same roles as the
    governance pages; it never authenticates anyone.
    """

    def authenticate(self, request: Any, **credentials: Any) -> None:
        return None

    def has_perm(self, user: Any, perm: str, obj: Any = None) -> bool:
        if not getattr(user, "is_staff", False):
            return False  # the console needs a login first
        if is_admin(user):
            return True
        return perm.split(".", 1)[-1].startswith("view_") and is_auditor(user)

    def has_module_perms(self, user: Any, app_label: str) -> bool:
        return bool(getattr(user, "is_staff", False)) and reads_everything(user)
