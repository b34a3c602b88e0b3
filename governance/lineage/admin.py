"""Lineage in the admin console: the picture on asset pages, the graph's nodes, exceptions.

Pages: *Lineage nodes* (every asset), *Model versions* and *Endpoints* (the
nodes of those kinds, through proxy models until customization and serving
have real models: see ``governance/models/lineage_assets.py``), and
*Quarantine exceptions*. Each asset page shows the SVG picture coloured by
status with the explained facts beside it.

Everything is read-only here; the one recorded action is "Record a
quarantine exception" on a quarantined asset (admins), which calls the same
service as the API and asks for a reason and an expiry. Revoking applies to
dataset versions only (their own page); model versions and endpoints are
quarantined by what they were made from.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied as ConsolePermissionDenied
from django.db.models import Prefetch, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe

from governance.admin_access import NodeScopedAdminMixin
from governance.lineage import graph
from governance.lineage.services import do_grant_quarantine_exception
from governance.lineage.status import node_status_now
from governance.lineage.svg import lineage_panel_html, node_url, status_colours
from governance.models import (
    DatasetVersion,
    LineageEdge,
    LineageEndpoint,
    LineageModelVersion,
    LineageNode,
    QuarantineException,
)
from governance.models.lineage import EdgeRelation
from pedigree.admin import ReadOnlyModelAdmin
from pedigree.errors import PedigreeError
from pedigree.roles import is_admin


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
class LineageNodeAdmin(NodeScopedAdminMixin, ReadOnlyModelAdmin):
    """Every asset in the lineage graph, with its picture and explained facts."""

    list_display = ["label", "kind", "status", "own_status", "facts_version", "updated_at"]
    list_filter = ["kind", "effective_status", "own_status"]
    search_fields = ["label", "reference"]
    fields = ["kind", "reference", "label", "own_status", "status", "facts_version", "updated_at", "lineage"]
    readonly_fields = ["kind", "reference", "label", "own_status", "status", "facts_version", "updated_at", "lineage"]
    change_form_template = "admin/governance/lineage/node_change_form.html"

    @admin.display(description="effective status", ordering="effective_status")
    def status(self, node: LineageNode) -> str:
        """The status now: an expiry or a lapsed exception shows at its instant."""
        return status_badge(node)

    @admin.display(description="lineage")
    def lineage(self, node: LineageNode) -> SafeString:
        return lineage_panel_html(node, impact_url=_impact_url(node))

    def get_urls(self) -> list[Any]:
        return [
            path("<int:pk>/exception/", self.admin_site.admin_view(self.exception_view), name="governance_lineagenode_exception"),
            *super().get_urls(),
        ]

    def exception_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        node = get_object_or_404(self.get_queryset(request), pk=pk)
        if not is_admin(request.user):
            raise ConsolePermissionDenied("only an admin may record a quarantine exception")
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
                # back to the asset's own page (model version, endpoint, dataset version)
                return HttpResponseRedirect(node_url(node) or reverse("admin:governance_lineagenode_change", args=[node.pk]))
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "original": node,
            "title": f"Record a quarantine exception for {node.label}",
            "form": form,
        }
        return TemplateResponse(request, "admin/governance/datasetversion/action_form.html", context)


@admin.register(QuarantineException)
class QuarantineExceptionAdmin(NodeScopedAdminMixin, admin.ModelAdmin):
    """Recorded quarantine exceptions (read-only; withdraw through the API)."""

    node_lookup = "node"
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
    """A link to the console page of the asset behind a node."""
    url = node_url(node) or reverse("admin:governance_lineagenode_change", args=[node.pk])
    return format_html('<a href="{}">{}</a>', url, node.label)


def status_badge(node: LineageNode) -> str:
    """The node's effective status in the picture's colours."""
    current = node_status_now(node)
    stroke, fill = status_colours(current, node.kind)
    return format_html(
        '<span class="pedigree-status status-{}" style="color:{};background:{};border:1px solid {};'
        'border-radius:3px;padding:0 .35em;white-space:nowrap">{}</span>',
        current, stroke, fill, stroke, current,
    )


# Provenance-only relations: shown in the picture, not in the "made from" columns.
_PROVENANCE = {EdgeRelation.PRODUCED_BY.value, EdgeRelation.EVALUATED_ON.value}


def _neighbours(edges: list[LineageEdge], *, upstream: bool) -> str:
    rows = [
        (edge.get_relation_display(), node_link(edge.upstream if upstream else edge.downstream))
        for edge in edges
        if edge.relation not in _PROVENANCE
    ]
    if not rows:
        return "—"
    return format_html_join(mark_safe("<br>"), "{} {}", rows)


class LineageAssetAdmin(NodeScopedAdminMixin, ReadOnlyModelAdmin):
    """One kind of asset in the lineage graph: its list, and a page with the picture and facts.

    The base of the *Model versions* and *Endpoints* pages, which stand in for
    the pages of ``customization.ModelVersion`` and ``serving.Endpoint`` until
    those exist (then delete the proxies and these admins; see
    ``governance/models/lineage_assets.py``). Read-only like every lineage page;
    the exception action is the *Lineage nodes* one, which returns here.
    """

    list_display = ["label", "status", "made_from", "used_by", "pii_types", "licences", "owners", "updated_at"]
    list_filter = ["effective_status", "own_status"]
    search_fields = ["label", "reference"]
    fieldsets = [
        (None, {"fields": ["label", "reference", "status", "own_status", "facts_version", "updated_at"]}),
        ("Connections", {"fields": ["made_from", "used_by"]}),
        ("Lineage", {"fields": ["lineage"]}),
    ]
    readonly_fields = [
        "label", "reference", "status", "own_status", "facts_version", "updated_at", "made_from", "used_by", "lineage",
    ]
    change_form_template = "admin/governance/lineage/node_change_form.html"

    def get_queryset(self, request: HttpRequest) -> QuerySet[LineageNode]:
        related = LineageEdge.objects.order_by("relation", "id")
        return (
            super()
            .get_queryset(request)
            .prefetch_related(
                Prefetch("upstream_edges", queryset=related.select_related("upstream")),
                Prefetch("downstream_edges", queryset=related.select_related("downstream")),
            )
        )

    @admin.display(description="status", ordering="effective_status")
    def status(self, node: LineageNode) -> str:
        return status_badge(node)

    @admin.display(description="made from")
    def made_from(self, node: LineageNode) -> str:
        return _neighbours(list(node.upstream_edges.all()), upstream=True)

    @admin.display(description="used by")
    def used_by(self, node: LineageNode) -> str:
        return _neighbours(list(node.downstream_edges.all()), upstream=False)

    @admin.display(description="PII types")
    def pii_types(self, node: LineageNode) -> str:
        return ", ".join(node.facts.get("summary", {}).get("pii_types") or []) or "none"

    @admin.display(description="licences")
    def licences(self, node: LineageNode) -> str:
        return ", ".join(node.facts.get("summary", {}).get("licences") or []) or "none"

    @admin.display(description="owners")
    def owners(self, node: LineageNode) -> str:
        return ", ".join(node.facts.get("summary", {}).get("owners") or []) or "none"

    @admin.display(description="lineage")
    def lineage(self, node: LineageNode) -> SafeString:
        # The call a real ModelVersion or Endpoint page will make: it knows its kind and reference.
        return lineage_panel_for(node.kind, node.reference)

    def asset_tools(self, node: LineageNode) -> list[tuple[str, str]]:
        """Extra links for the page's object tools: (url, text)."""
        return []

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        node = self.get_object(request, object_id)
        tools = self.asset_tools(node) if node is not None else []
        return super().change_view(request, object_id, form_url, {**(extra_context or {}), "asset_tools": tools})


@admin.register(LineageModelVersion)
class LineageModelVersionAdmin(LineageAssetAdmin):
    """*Model versions*: the model versions in the lineage graph (stand-in for ``customization.ModelVersion``)."""



@admin.register(LineageEndpoint)
class LineageEndpointAdmin(LineageAssetAdmin):
    """*Endpoints*: the endpoints in the lineage graph (stand-in for ``serving.Endpoint``)."""

    def asset_tools(self, node: LineageNode) -> list[tuple[str, str]]:
        try:
            simulate = reverse("admin:policies_simulate")
        except NoReverseMatch:
            return []
        return [(f"{simulate}?{urlencode({'endpoint': node.reference})}#invokers", "Who may call it?")]
