"""Model versions and endpoints as the console shows them today: lineage nodes of one kind.

Stand-ins, not the real records. Model versions and endpoints do not have
models of their own yet (``customization.ModelVersion`` and
``serving.Endpoint`` come with later issues); today they exist only as
``LineageNode`` rows of kind ``model_version`` and ``endpoint`` (the demo and
the tests add them through ``governance.lineage.graph``). These proxy models
give the admin console a "Model versions" and an "Endpoints" page with the
lineage picture, without a table of their own.

When the real models land, replace these proxies:

1. give the real model a ``ModelAdmin`` whose change page shows
   ``governance.lineage.admin.lineage_panel_for(kind, reference)``;
2. call ``governance.lineage.svg.register_kind_url(kind, url_of_reference)``
   in the app's ``ready()`` so the pictures link to the real pages;
3. delete the proxy class here, its admin in ``governance/lineage/admin.py``,
   its entry in ``governance.lineage.svg.NODE_PAGES``, and add the migration
   that deletes the proxy (it touches no table).
"""

from __future__ import annotations

from typing import ClassVar

from django.db import models

from governance.models.lineage import AssetKind, LineageNode


class _ModelVersionManager(models.Manager["LineageModelVersion"]):
    """Only the lineage nodes of kind ``model_version``."""

    def get_queryset(self) -> models.QuerySet[LineageModelVersion]:
        return super().get_queryset().filter(kind=AssetKind.MODEL_VERSION)


class _EndpointManager(models.Manager["LineageEndpoint"]):
    """Only the lineage nodes of kind ``endpoint``."""

    def get_queryset(self) -> models.QuerySet[LineageEndpoint]:
        return super().get_queryset().filter(kind=AssetKind.ENDPOINT)


class LineageModelVersion(LineageNode):
    """A model version as the lineage graph knows it (a proxy of ``LineageNode``).

    Replaced by ``customization.ModelVersion`` when fine-tunes land; see the
    module docstring for the steps.
    """

    objects: ClassVar[_ModelVersionManager] = _ModelVersionManager()

    class Meta:
        proxy = True
        verbose_name = "model version"
        verbose_name_plural = "model versions"

    def __str__(self) -> str:
        return self.label


class LineageEndpoint(LineageNode):
    """An endpoint as the lineage graph knows it (a proxy of ``LineageNode``).

    Replaced by ``serving.Endpoint`` when serving lands; see the module
    docstring for the steps.
    """

    objects: ClassVar[_EndpointManager] = _EndpointManager()

    class Meta:
        proxy = True
        verbose_name = "endpoint"
        verbose_name_plural = "endpoints"

    def __str__(self) -> str:
        return self.label
