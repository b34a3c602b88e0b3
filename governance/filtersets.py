"""Filters for the catalog's list endpoints."""

from __future__ import annotations

import django_filters
from django.db.models import QuerySet, TextField
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast

from governance.access import detail_dataset_ids
from governance.choices import DataFormat, PiiStatus, VersionStatus
from governance.models import Dataset, DatasetVersion
from governance.pii.selectors import versions_with_pii_type


class DatasetFilterSet(django_filters.FilterSet):
    name = django_filters.CharFilter(lookup_expr="icontains")
    owner = django_filters.CharFilter(field_name="owner_group__name", lookup_expr="iexact")
    steward = django_filters.CharFilter(field_name="steward__username")
    domain = django_filters.CharFilter(lookup_expr="iexact")
    label = django_filters.CharFilter(method="filter_label", help_text="key or key:value")
    licence = django_filters.CharFilter(method="filter_licence", help_text="datasets with a version under this licence")
    status = django_filters.ChoiceFilter(
        choices=VersionStatus.choices, method="filter_status", help_text="datasets with a version in this status"
    )
    pii_status = django_filters.ChoiceFilter(
        choices=PiiStatus.choices, method="filter_pii_status", help_text="datasets with a version in this PII status"
    )
    pii_type = django_filters.CharFilter(
        method="filter_pii_type", help_text="datasets with a version holding this PII type (found or confirmed)"
    )

    class Meta:
        model = Dataset
        fields = ["name", "owner", "steward", "domain", "label", "licence", "status", "pii_status", "pii_type"]

    def filter_pii_status(self, queryset: QuerySet[Dataset], name: str, value: str) -> QuerySet[Dataset]:
        return queryset.filter(pk__in=DatasetVersion.objects.filter(pii_status=value).values("dataset"))

    def filter_pii_type(self, queryset: QuerySet[Dataset], name: str, value: str) -> QuerySet[Dataset]:
        return queryset.filter(pk__in=versions_with_pii_type(value).values("dataset"))

    def filter_label(self, queryset: QuerySet[Dataset], name: str, value: str) -> QuerySet[Dataset]:
        key, sep, wanted = value.partition(":")
        key = key.strip()
        if not sep:
            return queryset.filter(labels__has_key=key)
        label = Cast(KeyTextTransform(key, "labels"), output_field=TextField())
        return queryset.annotate(_label=label).filter(_label=wanted.strip())

    def filter_licence(self, queryset: QuerySet[Dataset], name: str, value: str) -> QuerySet[Dataset]:
        return queryset.filter(pk__in=DatasetVersion.objects.filter(licence__iexact=value).values("dataset"))

    def filter_status(self, queryset: QuerySet[Dataset], name: str, value: str) -> QuerySet[Dataset]:
        return queryset.filter(pk__in=DatasetVersion.objects.filter(status=value).values("dataset"))


class DatasetVersionFilterSet(django_filters.FilterSet):
    dataset = django_filters.CharFilter(field_name="dataset__name")
    licence = django_filters.CharFilter(lookup_expr="iexact")
    status = django_filters.ChoiceFilter(choices=VersionStatus.choices)
    format = django_filters.ChoiceFilter(choices=DataFormat.choices)
    pii_status = django_filters.ChoiceFilter(choices=PiiStatus.choices)
    owner = django_filters.CharFilter(field_name="dataset__owner_group__name", lookup_expr="iexact")
    sha256 = django_filters.CharFilter(
        method="filter_sha256", help_text="versions with this digest, among those whose details you may see"
    )
    pii_type = django_filters.CharFilter(method="filter_pii_type", help_text="versions holding this PII type")

    class Meta:
        model = DatasetVersion
        fields = ["dataset", "licence", "status", "format", "pii_status", "owner", "sha256", "pii_type"]

    def filter_pii_type(self, queryset: QuerySet[DatasetVersion], name: str, value: str) -> QuerySet[DatasetVersion]:
        return queryset.filter(pk__in=versions_with_pii_type(value).values("pk"))

    def filter_sha256(self, queryset: QuerySet[DatasetVersion], name: str, value: str) -> QuerySet[DatasetVersion]:
        # A digest is a detail: searching by it must not confirm that another
        # team holds a file (governance.access).
        queryset = queryset.filter(sha256__iexact=value)
        user = getattr(self.request, "user", None)
        allowed = detail_dataset_ids(user) if user is not None else set()
        return queryset if allowed is None else queryset.filter(dataset_id__in=allowed)
