"""Lineage in the admin console: the picture on asset pages, the graph's nodes, exceptions.

Nodes and exceptions are read-only here; the one recorded action is "Record
a quarantine exception" on a quarantined node (admins), which calls the same
service as the API and asks for a reason and an expiry.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString

from governance.lineage import graph
from governance.lineage.services import do_grant_quarantine_exception
from governance.lineage.svg import lineage_panel_html
from governance.models import DatasetVersion, LineageNode, QuarantineException
from pedigree.admin import ReadOnlyModelAdmin
from pedigree.errors import PedigreeError


def _impact_url(node: LineageNode) -> str:
    try:
        return reverse("lineage-node-impact", args=[node.pk])
    except NoReverseMatch:
        return ""


def lineage_panel_for_dataset_version(version: DatasetVersion) -> SafeString:
    """The lineage panel of a dataset version page (registers the node if it is missing)."""
    node = graph.node_for_dataset_version(version)
    return lineage_panel_html(node, impact_url=_impact_url(node))


def lineage_panel_for(kind: str, reference: str) -> SafeString:
    """The lineage panel for any asset page (model versions and endpoints use this)."""
    node = graph.find_node(kind, reference)
    return lineage_panel_html(node, impact_url=_impact_url(node))


class ExceptionForm(forms.Form):
    """Record a quarantine exception: which cause, why, until when."""

    cause = forms.TypedChoiceField(coerce=int, choices=[], help_text="The revoked or expired asset upstream.")
    expires_at = forms.DateTimeField(widget=forms.DateTimeInput(attrs={"type": "datetime-local"}))
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), help_text="Why: recorded in the audit log.")

    def __init__(self, *args: Any, causes: list[LineageNode], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["cause"].choices = [(node.pk, f"{node.label} ({node.effective_status})") for node in causes]  # type: ignore[attr-defined]


@admin.register(LineageNode)
class LineageNodeAdmin(ReadOnlyModelAdmin):
    """Every asset in the lineage graph, with its picture and explained facts."""

    list_display = ["label", "kind", "effective_status", "own_status", "facts_version", "updated_at"]
    list_filter = ["kind", "effective_status", "own_status"]
    search_fields = ["label", "reference"]
    fields = ["kind", "reference", "label", "own_status", "effective_status", "facts_version", "updated_at", "lineage"]
    readonly_fields = ["kind", "reference", "label", "own_status", "effective_status", "facts_version", "updated_at", "lineage"]
    change_form_template = "admin/governance/lineage/node_change_form.html"

    @admin.display(description="lineage")
    def lineage(self, node: LineageNode) -> SafeString:
        return lineage_panel_html(node, impact_url=_impact_url(node))

    def get_urls(self) -> list[Any]:
        return [
            path("<int:pk>/exception/", self.admin_site.admin_view(self.exception_view), name="governance_lineagenode_exception"),
            *super().get_urls(),
        ]

    def exception_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        node = get_object_or_404(LineageNode, pk=pk)
        causes = list(LineageNode.objects.filter(pk__in=[int(key) for key in node.effective_quarantine.get("quarantine", {})]).exclude(pk=node.pk))
        form = ExceptionForm(request.POST or None, causes=causes)
        if request.method == "POST" and form.is_valid():
            try:
                do_grant_quarantine_exception(
                    actor=request.user,  # type: ignore[arg-type]
                    node=node,
                    cause=graph.get_node(form.cleaned_data["cause"]),
                    reason=form.cleaned_data["reason"],
                    expires_at=form.cleaned_data["expires_at"],
                )
            except PedigreeError as error:
                form.add_error(None, error.message)
            else:
                messages.success(request, f"Exception recorded for {node.label}.")
                return HttpResponseRedirect(reverse("admin:governance_lineagenode_change", args=[node.pk]))
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "original": node,
            "title": f"Record a quarantine exception for {node.label}",
            "form": form,
        }
        return TemplateResponse(request, "admin/governance/datasetversion/action_form.html", context)


@admin.register(QuarantineException)
class QuarantineExceptionAdmin(admin.ModelAdmin):
    """Recorded quarantine exceptions (read-only; withdraw through the API)."""

    list_display = ["node", "cause", "granted_by", "granted_at", "expires_at", "in_force"]
    list_select_related = ["node", "cause", "granted_by"]
    readonly_fields = ["node", "cause", "reason", "expires_at", "granted_by", "granted_at", "withdrawn_at", "withdrawn_by"]
    fields = ["node", "cause", "reason", "expires_at", "granted_by", "granted_at", "withdrawn_at", "withdrawn_by"]

    @admin.display(boolean=True, description="in force")
    def in_force(self, exception: QuarantineException) -> bool:
        return exception.withdrawn_at is None and exception.expires_at > timezone.now()

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


def node_link(node: LineageNode) -> str:
    """A link to a node's console page."""
    return format_html('<a href="{}">{}</a>', reverse("admin:governance_lineagenode_change", args=[node.pk]), node.label)
