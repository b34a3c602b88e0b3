"""Reads for serving, shared by the API and the console."""

from __future__ import annotations

from governance.models.lineage import AssetKind, LineageNode


def existing_endpoint_ids() -> set[str]:
    """Ids of the endpoints that exist, as the policies name them.

    Today these are the endpoint nodes of the lineage graph (the policies name
    them by the node's reference); the policies also know hypothetical
    endpoints, one per dataset version, which are not in this set. Read
    ``serving.Endpoint`` instead when endpoints have a model of their own.
    """
    return set(LineageNode.objects.filter(kind=AssetKind.ENDPOINT).values_list("reference", flat=True))
