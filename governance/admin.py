"""The catalog in the admin console.

Versions are read-only here: their content never changes, and their
governance metadata changes only through the two recorded actions on each
version's page ("Change governance metadata" and "Revoke"), which call the
same services as the API and ask for a reason.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied as ConsolePermissionDenied
from django.db.models import Count, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from governance import services
from governance.admin_access import AuditorsAndAdminsOnlyMixin, DatasetScopedAdminMixin
from governance.choices import ConsentBasis, Purpose, Region
from governance.licences import all_licences
from governance.lineage.admin import (
    lineage_panel_for_dataset_version,  # also registers lineage admin
)
from governance.lineage.status import dataset_version_status, with_lineage_status
from governance.models import AuditEvent, Dataset, DatasetVersion
from governance.pii import admin as pii_admin  # noqa: F401  (registers the PII scan pages)
from pedigree.admin import ReadOnlyModelAdmin, ServiceBackedModelAdmin
from pedigree.errors import PedigreeError
from pedigree.roles import is_admin


def _filesize(size: int) -> str:
    value = float(size)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if value < 1024 or unit == "TB":
            return f"{value:,.0f} {unit}" if unit == "B" else f"{value:,.1f} {unit}"
        value /= 1024
    return f"{size} B"


def _describe_changes(action: str, changes: dict[str, Any]) -> str:
    """``field: old → new`` for diffs; ``field=value`` for the facts of a creation."""
    parts = []
    for name in sorted(changes):
        value = changes[name]
        if not action.endswith(".created") and isinstance(value, list) and len(value) == 2:
            parts.append(f"{name}: {value[0]!r} → {value[1]!r}")
        else:
            parts.append(f"{name}={value!r}")
    return "; ".join(parts)



def effective_status_display(version: DatasetVersion) -> str:
    """The version's effective status, as the API and the policies see it, and its
    own status beside it when they differ (a redacted copy of a revoked original)."""
    status = dataset_version_status(version)
    return status if status == version.status else f"{status} (its own status: {version.status})"


class DatasetVersionInline(admin.TabularInline):
    """The version history of a dataset, newest first."""

    model = DatasetVersion
    fk_name = "dataset"
    extra = 0
    can_delete = False
    show_change_link = True
    ordering = ["-number"]
    fields = ("number", "effective_status", "licence", "record_count", "size", "short_digest", "pii_status", "created_by", "created_at")
    readonly_fields = ("number", "effective_status", "licence", "record_count", "size", "short_digest", "pii_status", "created_by", "created_at")

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return True  # shown only on a dataset page the user may already see (DatasetAdmin scopes it)

    def get_queryset(self, request: HttpRequest) -> QuerySet[DatasetVersion]:
        return with_lineage_status(super().get_queryset(request))

    @admin.display(description="status")
    def effective_status(self, version: DatasetVersion) -> str:
        return effective_status_display(version)

    @admin.display(description="size")
    def size(self, version: DatasetVersion) -> str:
        return _filesize(version.size_bytes)

    @admin.display(description="sha256")
    def short_digest(self, version: DatasetVersion) -> str:
        return version.sha256[:12] + "…"


class DatasetAdminForm(forms.ModelForm):
    """The dataset form, with the reason an ownership change needs."""

    reason = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Why: required to change the owner group or steward (admins), recorded in the audit log.",
    )

    actor: Any = None  # set per request by DatasetAdmin.get_form

    class Meta:
        model = Dataset
        fields = ["name", "title", "description", "owner_group", "steward", "domain", "labels"]

    def clean(self) -> dict[str, Any]:
        """Ask the services' questions before saving, so a refusal is a form
        error naming the field (never a 500 from inside the save)."""
        data: dict[str, Any] = super().clean() or {}
        try:
            if self.instance.pk is None:
                if data.get("owner_group") is not None:
                    services.check_may_create_dataset(self.actor, data["owner_group"])
            else:
                changed = sorted({"owner_group", "steward"} & set(self.changed_data))
                if changed:
                    services.check_ownership_change(
                        actor=self.actor, dataset=self.instance, changed=changed,
                        owner_group=data.get("owner_group") or self.instance.owner_group,
                        steward=data.get("steward") or self.instance.steward, reason=data.get("reason", ""),
                    )
        except PedigreeError as error:
            field = error.details.get("field")
            self.add_error(field if field in self.fields else None, error.message)
        return data


@admin.register(Dataset)
class DatasetAdmin(DatasetScopedAdminMixin, ServiceBackedModelAdmin):
    """Datasets: each user sees those whose details they may see; owner group
    and steward are changed here by admins only (with a reason); others
    request a transfer through the API."""

    form = DatasetAdminForm
    dataset_lookup = ""
    list_display = ["name", "title", "owner_group", "steward", "domain", "versions_count", "updated_at"]
    list_filter = ["owner_group", "domain", "versions__licence", "versions__status"]
    search_fields = ["name", "title", "description", "domain"]
    readonly_fields = ["created_by", "created_at", "updated_at"]
    fields = [
        "name", "title", "description", "owner_group", "steward", "domain", "labels", "reason",
        "created_by", "created_at", "updated_at",
    ]
    inlines = [DatasetVersionInline]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return is_admin(request.user) or Dataset.objects.restrict(request.user, "change").exists()  # type: ignore[arg-type]

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        if obj is None:
            return self.has_add_permission(request)
        return bool(obj.may(request.user, "change"))

    def get_queryset(self, request: HttpRequest) -> QuerySet[Dataset]:
        return (
            super().get_queryset(request)
            .select_related("owner_group", "steward")
            .annotate(_versions=Count("versions"))
        )

    @admin.display(description="versions", ordering="_versions")
    def versions_count(self, dataset: Any) -> int:
        return dataset._versions

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any) -> Any:
        form = super().get_form(request, obj, change=change, **kwargs)
        form.actor = request.user  # type: ignore[attr-defined]  # DatasetAdminForm.actor
        return form

    def get_readonly_fields(self, request: HttpRequest, obj: Dataset | None = None) -> list[str]:
        if obj is None:
            return list(self.readonly_fields)
        if is_admin(request.user):
            return [*self.readonly_fields, "name"]
        return [*self.readonly_fields, "name", "owner_group", "steward"]

    def save_model(self, request: HttpRequest, obj: Dataset, form: forms.ModelForm, change: bool) -> None:
        """Create and change through the services, so the audit log records it."""
        if not change:
            created = services.do_create_dataset(
                actor=request.user,
                name=obj.name,
                owner_group=obj.owner_group,
                steward=obj.steward,
                title=obj.title,
                description=obj.description,
                domain=obj.domain,
                labels=obj.labels,
            )
            obj.pk = created.pk
            return
        original = Dataset.objects.get(pk=obj.pk)
        changes = {name: form.cleaned_data[name] for name in form.changed_data if name in services.DATASET_EDITABLE_FIELDS}
        # The form has already set the new values on obj; the service diffs from the stored row.
        services.do_update_dataset(
            actor=request.user, dataset=original, changes=changes, reason=form.cleaned_data.get("reason", "")
        )

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class GovernanceForm(forms.Form):
    """The recorded action that changes a version's governance metadata."""

    licence = forms.ChoiceField(choices=[])
    licence_text = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), required=False)
    copyright_holder = forms.CharField(required=False)
    override_permissions = forms.BooleanField(
        required=False, help_text="Set the permissions below instead of deriving them from the licence."
    )
    permits_training = forms.BooleanField(required=False)
    permits_commercial_use = forms.BooleanField(required=False)
    requires_attribution = forms.BooleanField(required=False)
    requires_share_alike = forms.BooleanField(required=False)
    allowed_purposes = forms.MultipleChoiceField(
        choices=Purpose.choices, required=False, widget=forms.CheckboxSelectMultiple
    )
    consent_basis = forms.ChoiceField(choices=ConsentBasis.choices)
    residency_regions = forms.MultipleChoiceField(
        choices=Region.choices, required=False, widget=forms.CheckboxSelectMultiple
    )
    expires_at = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    notes = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), required=False)
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), help_text="Why: recorded in the audit log.")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        licence_field: Any = self.fields["licence"]
        licence_field.choices = [(lic.id, f"{lic.id} — {lic.name}") for lic in all_licences().values()]

    def changes(self) -> dict[str, Any]:
        data = self.cleaned_data
        changes: dict[str, Any] = {
            name: data[name]
            for name in (
                "licence", "licence_text", "copyright_holder", "allowed_purposes",
                "consent_basis", "residency_regions", "expires_at", "notes",
            )
        }
        if data["override_permissions"]:
            changes["permissions"] = {
                "training": data["permits_training"],
                "commercial_use": data["permits_commercial_use"],
                "attribution": data["requires_attribution"],
                "share_alike": data["requires_share_alike"],
            }
        else:
            changes["permissions"] = {}
        return changes


class RevokeForm(forms.Form):
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), help_text="Why: recorded in the audit log.")


@admin.register(DatasetVersion)
class DatasetVersionAdmin(DatasetScopedAdminMixin, ReadOnlyModelAdmin):
    list_display = ["__str__", "effective_status", "licence", "record_count", "size", "format", "layout", "pii_status", "created_at"]
    list_filter = ["status", "licence", "format", "layout", "pii_status", "consent_basis", "dataset__owner_group"]
    search_fields = ["dataset__name", "sha256", "original_filename", "copyright_holder", "notes"]
    list_select_related = ["dataset"]
    readonly_fields = [
        "dataset", "number", "sha256", "size", "record_count", "format", "layout", "field_list",
        "storage_uri", "source_uri", "original_filename", "derived_from", "created_by", "created_at",
        "effective_status", "status_reason", "status_changed_at", "status_changed_by",
        "licence", "licence_text", "copyright_holder", "permissions", "permissions_overridden",
        "allowed_purposes", "consent_basis", "residency_regions", "expires_at", "notes",
        "pii_status", "pii_types", "facts_version", "history",
        "lineage",
    ]
    fieldsets = [
        ("Content (immutable)", {"fields": [
            "dataset", "number", "sha256", "size", "record_count", "format", "layout", "field_list",
            "storage_uri", "source_uri", "original_filename", "derived_from", "created_by", "created_at",
        ]}),
        ("Status", {"fields": ["effective_status", "status_reason", "status_changed_at", "status_changed_by"]}),
        ("Governance (change with the recorded action above)", {"fields": [
            "licence", "licence_text", "copyright_holder", "permissions", "permissions_overridden",
            "allowed_purposes", "consent_basis", "residency_regions", "expires_at", "notes",
            "pii_status", "pii_types", "facts_version",
        ]}),
        ("Lineage", {"fields": ["lineage"]}),
        ("History", {"fields": ["history"]}),
    ]
    change_form_template = "admin/governance/datasetversion/change_form.html"

    def get_queryset(self, request: HttpRequest) -> QuerySet[DatasetVersion]:
        return with_lineage_status(super().get_queryset(request))

    @admin.display(description="status", ordering="status")
    def effective_status(self, version: DatasetVersion) -> str:
        return effective_status_display(version)

    @admin.display(description="size")
    def size(self, version: DatasetVersion) -> str:
        return f"{_filesize(version.size_bytes)} ({version.size_bytes:,} bytes)"

    @admin.display(description="fields")
    def field_list(self, version: DatasetVersion) -> str:
        return format_html_join(
            ", ", "<code>{}</code> {}{}", ((f["name"], f["type"], " (text)" if f["text"] else "") for f in version.fields)
        )

    @admin.display(description="permissions")
    def permissions(self, version: DatasetVersion) -> str:
        flags = [
            ("training", version.permits_training),
            ("commercial use", version.permits_commercial_use),
            ("attribution required", version.requires_attribution),
            ("share-alike", version.requires_share_alike),
        ]
        return format_html_join(" · ", "{}: <b>{}</b>", ((name, "yes" if flag else "no") for name, flag in flags))

    @admin.display(description="lineage")
    def lineage(self, version: DatasetVersion) -> str:
        return lineage_panel_for_dataset_version(version)

    @admin.display(description="recorded actions")
    def history(self, version: DatasetVersion) -> str:
        events = AuditEvent.objects.filter(target_type="governance.datasetversion", target_id=str(version.pk))
        rows = format_html_join(
            "",
            "<tr><td>#{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td><code>{}</code></td></tr>",
            (
                (e.sequence, e.created_at.strftime("%Y-%m-%d %H:%M:%S"), e.actor_label, e.action, e.reason, _describe_changes(e.action, e.changes))
                for e in events.order_by("sequence")
            ),
        )
        return format_html(
            '<table class="pedigree-history"><tr><th>#</th><th>when</th><th>who</th><th>action</th><th>why</th><th>fields</th></tr>{}</table>',
            rows,
        )

    def get_urls(self) -> list[Any]:
        wrap = self.admin_site.admin_view
        return [
            path("<int:pk>/governance/", wrap(self.governance_view), name="governance_datasetversion_governance"),
            path("<int:pk>/revoke/", wrap(self.revoke_view), name="governance_datasetversion_revoke"),
            *super().get_urls(),
        ]

    def _render(self, request: HttpRequest, version: DatasetVersion, form: forms.Form, title: str) -> HttpResponse:
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "original": version,
            "title": title,
            "form": form,
        }
        return TemplateResponse(request, "admin/governance/datasetversion/action_form.html", context)

    def _change_url(self, version: DatasetVersion) -> str:
        return reverse("admin:governance_datasetversion_change", args=[version.pk])

    def _changeable_version(self, request: HttpRequest, pk: int) -> DatasetVersion:
        """The version, if the user may see it (else 404) and change it (else 403)."""
        version = get_object_or_404(self.get_queryset(request).select_related("dataset"), pk=pk)
        if not version.dataset.may(request.user, "change"):  # type: ignore[arg-type]
            raise ConsolePermissionDenied(f"{request.user} may not change {version}")
        return version

    def governance_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        version = self._changeable_version(request, pk)
        if request.method == "POST":
            form = GovernanceForm(request.POST)
            if form.is_valid():
                try:
                    services.do_update_version_governance(
                        actor=request.user, version=version, changes=form.changes(), reason=form.cleaned_data["reason"]
                    )
                except PedigreeError as error:
                    form.add_error(error.details.get("field") if error.details.get("field") in form.fields else None, error.message)
                else:
                    messages.success(request, f"Governance metadata of {version} updated.")
                    return HttpResponseRedirect(self._change_url(version))
        else:
            form = GovernanceForm(
                initial={
                    "licence": version.licence,
                    "licence_text": version.licence_text,
                    "copyright_holder": version.copyright_holder,
                    "override_permissions": version.permissions_overridden,
                    "permits_training": version.permits_training,
                    "permits_commercial_use": version.permits_commercial_use,
                    "requires_attribution": version.requires_attribution,
                    "requires_share_alike": version.requires_share_alike,
                    "allowed_purposes": version.allowed_purposes,
                    "consent_basis": version.consent_basis,
                    "residency_regions": version.residency_regions,
                    "expires_at": version.expires_at,
                    "notes": version.notes,
                }
            )
        return self._render(request, version, form, f"Change governance metadata of {version}")

    def revoke_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        version = self._changeable_version(request, pk)
        form = RevokeForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                services.do_revoke_dataset_version(actor=request.user, version=version, reason=form.cleaned_data["reason"])
            except PedigreeError as error:
                form.add_error(None, error.message)
            else:
                messages.warning(request, f"{version} revoked.")
                return HttpResponseRedirect(self._change_url(version))
        return self._render(request, version, form, f"Revoke {version}")


@admin.register(AuditEvent)
class AuditEventAdmin(AuditorsAndAdminsOnlyMixin, ReadOnlyModelAdmin):
    list_display = ["sequence", "created_at", "actor_label", "action", "target_label", "reason"]
    list_filter = ["action", "target_type"]
    search_fields = ["target_label", "actor_label", "reason", "hash"]
    readonly_fields = [f.name for f in AuditEvent._meta.fields]
