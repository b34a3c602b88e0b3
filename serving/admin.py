"""Consumers in the admin console, with a link to what the policies let them call."""

from __future__ import annotations

from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html

from serving.models import Consumer


@admin.register(Consumer)
class ConsumerAdmin(admin.ModelAdmin):
    """Consumers: the principals that call model endpoints."""

    list_display = ["name", "region", "commercial", "purposes", "pii_clearances", "groups", "owner", "simulate"]
    list_filter = ["region", "commercial"]
    search_fields = ["name", "description"]
    readonly_fields = ["facts_version", "created_at", "updated_at"]

    @admin.display(description="policies")
    def simulate(self, consumer: Consumer) -> str:
        url = reverse("admin:policies_simulate") + f"?consumer={consumer.name}#callable"
        return format_html('<a href="{}">what may it call?</a>', url)
