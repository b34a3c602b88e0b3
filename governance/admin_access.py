"""Console access by role, for the governance pages.

Signing in to the console (``is_staff``) grants no data by itself. Who sees
a governance page is decided by the same rules as the API
(``governance.access``), not by Django's per-model permissions:

- admins (superusers, the ``admins`` group) see and act on everything;
- auditors (the ``auditors`` group) see everything and change nothing;
- a steward or team member with a console login sees the datasets, versions,
  PII reports and lineage of their own team's data, and acts on them through
  the recorded actions (which the services check again);
- anyone else with a console login sees none of these pages.
"""

from __future__ import annotations

from typing import Any

from django.db.models import Model, QuerySet
from django.http import HttpRequest

from governance.access import detail_dataset_ids, visible_node_ids
from governance.models import Dataset
from pedigree.roles import is_admin, is_auditor, reads_everything


def console_member(user: Any) -> bool:
    """Whether ``user`` has any governance page to see: an admin, an auditor,
    or the steward or a team member of at least one dataset."""
    if not (user.is_authenticated and user.is_active and user.is_staff):
        return False
    return reads_everything(user) or Dataset.objects.restrict(user, "view_details").exists()


class _ScopedConsoleMixin:
    """A console page whose rows are those ``scope`` lets the user see; one
    row is viewable only when it is among them."""

    def scope(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        raise NotImplementedError

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        return self.scope(request, super().get_queryset(request))  # type: ignore[misc]

    def has_module_permission(self, request: HttpRequest) -> bool:
        return console_member(request.user)

    def has_view_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        if not console_member(request.user):
            return False
        if obj is None:
            return True
        return self.scope(request, type(obj)._default_manager.filter(pk=obj.pk)).exists()


class DatasetScopedAdminMixin(_ScopedConsoleMixin):
    """Rows scoped to the datasets whose details the user may see.

    ``dataset_lookup`` is the path from the page's model to its dataset
    (``""`` for ``Dataset`` itself, ``"dataset"`` for versions,
    ``"version__dataset"`` for scans).
    """

    dataset_lookup = "dataset"

    def scope(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        allowed = detail_dataset_ids(request.user)
        if allowed is None:
            return queryset
        field = f"{self.dataset_lookup}__in" if self.dataset_lookup else "pk__in"
        return queryset.filter(**{field: allowed})


class NodeScopedAdminMixin(_ScopedConsoleMixin):
    """Lineage nodes scoped to those the user may see (``governance.access``)."""

    node_lookup = ""  # path to the node: "" for nodes themselves, "node" for exceptions

    def render_change_form(self, request: HttpRequest, context: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        # Only an admin records a quarantine exception (the service checks again).
        context["can_record_exception"] = is_admin(request.user)
        return super().render_change_form(request, context, *args, **kwargs)  # type: ignore[misc]

    def scope(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        visible = visible_node_ids(request.user)
        if visible is None:
            return queryset
        field = f"{self.node_lookup}__in" if self.node_lookup else "pk__in"
        return queryset.filter(**{field: visible})


class AuditorsAndAdminsOnlyMixin:
    """Pages for admins and auditors only (the whole audit log)."""

    def has_module_permission(self, request: HttpRequest) -> bool:
        user = request.user
        return bool(user.is_authenticated and user.is_staff and (is_admin(user) or is_auditor(user)))

    def has_view_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return self.has_module_permission(request)
