"""Filters for the catalog's list endpoints."""

from __future__ import annotations

import django_filters
from django.db.models import QuerySet, TextField
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast

from governance.choices import DataFormat, PiiStatus, VersionStatus
from governance.models import Dataset, DatasetVersion


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

    class Meta:
        model = Dataset
        fields = ["name", "owner", "steward", "domain", "label", "licence", "status"]

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
    sha256 = django_filters.CharFilter(lookup_expr="iexact")

    class Meta:
        model = DatasetVersion
        fields = ["dataset", "licence", "status", "format", "pii_status", "owner", "sha256"]
