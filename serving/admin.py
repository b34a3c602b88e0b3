"""Consumers in the admin console, with a link to what the policies let them call.

Adding, changing and deleting go through ``serving.services`` like the API,
so every change is validated, bumps the consumer's facts version and is
recorded in the audit log.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html

from pedigree.admin import ServiceBackedModelAdmin
from serving import services
from serving.models import Consumer


class ConsumerAdminForm(forms.ModelForm):
    """The consumer's fields and the reason for the change (recorded in the audit log)."""

    reason = forms.CharField(
        max_length=500, help_text="Why: recorded in the audit log with the change (e.g. a ticket number)."
    )

    class Meta:
        model = Consumer
        fields = ["name", "description", "owner", "groups", "pii_clearances", "purposes", "region", "commercial"]


@admin.register(Consumer)
class ConsumerAdmin(ServiceBackedModelAdmin):
    """Consumers: the principals that call model endpoints."""

    form = ConsumerAdminForm

    list_display = ["name", "region", "commercial", "purposes", "pii_clearances", "groups", "owner", "simulate"]
    list_filter = ["region", "commercial"]
    list_select_related = ["owner"]
    search_fields = ["name", "description"]
    readonly_fields = ["facts_version", "created_at", "updated_at"]

    @admin.display(description="policies")
    def simulate(self, consumer: Consumer) -> str:
        url = reverse("admin:policies_simulate") + f"?consumer={consumer.name}#callable"
        return format_html('<a href="{}">what may it call?</a>', url)

    def get_readonly_fields(self, request: HttpRequest, obj: Consumer | None = None) -> list[str]:
        # The name never changes: the policies and the decision log refer to it.
        return [*self.readonly_fields, "name"] if obj else list(self.readonly_fields)

    def save_model(self, request: HttpRequest, obj: Consumer, form: forms.ModelForm, change: bool) -> None:
        """Create and change through the services, so the audit log records it."""
        if not change:
            created = services.do_create_consumer(
                actor=request.user,
                name=obj.name,
                description=obj.description,
                owner=obj.owner,
                groups=obj.groups,
                pii_clearances=obj.pii_clearances,
                purposes=obj.purposes,
                region=obj.region,
                commercial=obj.commercial,
                reason=form.cleaned_data["reason"],
            )
            obj.pk, obj.facts_version = created.pk, created.facts_version
            return
        # The form has already set the new values on obj; the service diffs from the stored row.
        changes = {name: form.cleaned_data[name] for name in form.changed_data if name in services.CONSUMER_EDITABLE_FIELDS}
        services.do_update_consumer(actor=request.user, consumer=obj, changes=changes, reason=form.cleaned_data["reason"])

    # Django's delete confirmation page has no field for a reason: the console's
    # deletions are recorded as such, by whom; the API takes ?reason=.
    def delete_model(self, request: HttpRequest, obj: Consumer) -> None:
        services.do_delete_consumer(actor=request.user, consumer=obj, reason=_console_deletion(request))

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Consumer]) -> None:
        for consumer in queryset:
            services.do_delete_consumer(actor=request.user, consumer=consumer, reason=_console_deletion(request))


def _console_deletion(request: HttpRequest) -> str:
    return f"deleted in the admin console by {request.user.get_username()}"
