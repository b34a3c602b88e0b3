"""Filters of the consumers list."""

from __future__ import annotations

import django_filters

from serving.models import Consumer


class ConsumerFilterSet(django_filters.FilterSet):
    """``?region=eu``, ``?commercial=true``, ``?owner=<username>``."""

    owner = django_filters.CharFilter(field_name="owner__username", help_text="The owner's username.")

    class Meta:
        model = Consumer
        fields = ["region", "commercial", "owner"]
