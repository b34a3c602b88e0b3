"""The policy engine in the admin console: the decision log, and simulation.

"Policies and simulation" (a page on the decision log) shows the policy files
in force, the last rejected change, and answers, before anything is made live:
which consumers may call an endpoint, which endpoints a consumer may call, and
what would change if a policy file were edited.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import path

from pedigree.admin import ReadOnlyModelAdmin
from pedigree.errors import NotFound, PedigreeError
from policies import decisions, simulation
from policies.decision_log import decision_log
from policies.facts import find_resource, resources_of_kind
from policies.models import PolicyDecision
from policies.principals import principal_kind, registered_principals


class PolicyChangeForm(forms.Form):
    """A proposed policy file (or its deletion) to simulate."""
    file = forms.CharField(help_text="An existing file to edit, or a new one (e.g. owners/research.cedar).")
    content = forms.CharField(widget=forms.Textarea(attrs={"rows": 18, "cols": 100, "style": "font-family: monospace"}), required=False)
    delete = forms.BooleanField(required=False, help_text="Simulate deleting the file instead.")


@admin.register(PolicyDecision)
class PolicyDecisionAdmin(ReadOnlyModelAdmin):
    """The decision log: read-only, newest first."""

    list_display = ["decided_at", "outcome", "principal", "action", "resource", "deciding", "short_reason", "cached"]
    list_filter = ["outcome", "action", "cached"]
    search_fields = ["principal", "resource", "detail__reason", "inputs_digest", "policy_digest"]
    date_hierarchy = "decided_at"
    list_select_related = ["detail"]
    readonly_fields = [
        "decided_at", "outcome", "principal", "action", "resource", "context", "policies", "facts", "reason",
        "cached", "inputs_digest", "policy_digest", "detail",
    ]
    fields = list(readonly_fields)  # type: ignore[assignment]
    change_list_template = "admin/policies/policydecision/change_list.html"

    @admin.display(description="policies")
    def deciding(self, decision: PolicyDecision) -> str:
        return ", ".join(decision.policies) or "—"

    @admin.display(description="reason")
    def short_reason(self, decision: PolicyDecision) -> str:
        return decision.reason if len(decision.reason) < 160 else decision.reason[:157] + "…"

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        decision_log.flush()  # show what is still queued, too
        return super().changelist_view(request, extra_context)

    def get_urls(self) -> list[Any]:
        return [
            path("simulate/", self.admin_site.admin_view(self.simulate_view), name="policies_simulate"),
            *super().get_urls(),
        ]

    def simulate_view(self, request: HttpRequest) -> HttpResponse:
        """Policies in force and the three simulations."""
        context: dict[str, Any] = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": "Policies and simulation",
            "status": decisions.policy_status(),
            "endpoints": resources_of_kind("Endpoint"),
            "consumers": registered_principals("Consumer"),
        }
        purpose = request.GET.get("purpose") or ""
        call_context = {"purpose": purpose} if purpose else {}
        context["purpose"] = purpose
        try:
            if request.GET.get("endpoint"):
                endpoint = find_resource("Endpoint", request.GET["endpoint"])
                context["selected_endpoint"] = endpoint
                context["invokers"] = simulation.who_may_invoke(endpoint, call_context)
            if request.GET.get("consumer"):
                consumer = principal_kind("Consumer").named(request.GET["consumer"])
                if consumer is None:
                    raise NotFound(f"no consumer named {request.GET['consumer']!r}", field="consumer")
                context["selected_consumer"] = consumer
                context["callable"] = simulation.endpoints_for(consumer, call_context)
        except PedigreeError as error:
            context["error"] = str(error)
        initial_file = request.GET.get("file", "")
        sources = decisions.current_policies().sources
        form = PolicyChangeForm(
            request.POST or None,
            initial={"file": initial_file, "content": sources.get(initial_file, "")},
        )
        if request.method == "POST" and form.is_valid():
            try:
                content = None if form.cleaned_data["delete"] else form.cleaned_data["content"]
                context["diff"] = simulation.simulate_policy_change(form.cleaned_data["file"], content)
            except PedigreeError as error:
                form.add_error("file", str(error))
        context["change_form"] = form
        context["files"] = sorted(sources)
        return TemplateResponse(request, "admin/policies/simulate.html", context)
