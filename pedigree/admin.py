"""Admin building blocks shared by the apps."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest, HttpResponse


class ReadOnlyModelAdmin(admin.ModelAdmin):
    """A console page that shows records but never adds, changes or deletes them.

    For immutable or append-only records (dataset versions, audit events, scan
    reports, decisions, lineage nodes): they change only through services, so
    the console offers recorded actions instead of an edit form.
    """

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class ServiceBackedModelAdmin(admin.ModelAdmin):
    """A console page whose saves and deletes go through the apps' services.

    Django wraps the change and delete views in a transaction; the services
    open their own durable one (committed with its audit row when the service
    returns), which cannot nest inside another. So these views run without
    Django's wrapper and each service call is its own unit of work. Override
    ``save_model`` / ``delete_model`` to call the services.
    """

    def changeform_view(
        self, request: HttpRequest, object_id: str | None = None, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        return self._changeform_view(request, object_id, form_url, extra_context)  # type: ignore[attr-defined,no-any-return]

    def delete_view(self, request: HttpRequest, object_id: str, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        return self._delete_view(request, object_id, extra_context)  # type: ignore[attr-defined,no-any-return]
