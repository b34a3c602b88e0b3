"""Who sees what beyond the catalog entry: one set of rules for the API and the console.

Any signed-in user sees a dataset's catalog entry (name, title, owners,
licence, PII summary). What is not catalog metadata is for the owning team,
the steward, auditors and admins (``Dataset.objects.restrict(user,
"view_details")``):

- a version's digest, storage URI, source URI, original file name, status
  reason and notes;
- its recorded history (reasons, sources);
- PII scans and reports (masked samples), reviews and redactions;
- lineage nodes and their facts: a dataset version's node for those who see
  the version's details, any other node (a model, an endpoint, a run) for
  members of a team among its effective owners.

Knowing another team's digest and storage URI is what let anyone register
that team's stored blob into their own dataset (the confused deputy), so
these stay hidden even though they are "only metadata".
"""

from __future__ import annotations

from typing import Any

from django.db.models import Q

from governance.models import Dataset, DatasetVersion
from governance.models.lineage import AssetKind, LineageNode
from pedigree.errors import PermissionDenied
from pedigree.roles import reads_everything

DETAIL_MESSAGE = "only its owning team ({team}), its steward ({steward}), auditors and admins may see"


def detail_dataset_ids(user: Any) -> set[int] | None:
    """Ids of the datasets whose details ``user`` may see; ``None`` means all."""
    if reads_everything(user):
        return None
    return set(
        Dataset.objects.filter(Q(steward=user) | Q(owner_group__in=user.groups.all())).values_list("pk", flat=True)
    )


def may_see_details(user: Any, dataset: Dataset) -> bool:
    """Whether ``user`` may see what is not catalog metadata about ``dataset``."""
    allowed = detail_dataset_ids(user)
    return allowed is None or dataset.pk in allowed


def ensure_details_visible(user: Any, dataset: Dataset, what: str) -> None:
    """Raise ``PermissionDenied`` naming who may see ``what`` of ``dataset``."""
    if not may_see_details(user, dataset):
        who = user.get_username() if user.is_authenticated else "an anonymous user"
        raise PermissionDenied(
            f"{who} may not see the {what} of dataset {dataset.name}: "
            + DETAIL_MESSAGE.format(team=dataset.owner_group.name, steward=dataset.steward.get_username()),
            field="dataset",
        )


def visible_node_ids(user: Any) -> set[int] | None:
    """Ids of the lineage nodes ``user`` may see; ``None`` means all.

    A dataset version's node follows the version's details; any other node
    is visible to the members of the teams among its effective owners (a
    model trained on a team's data is owned by that team too).
    """
    if reads_everything(user):
        return None
    if not user.is_authenticated:
        return set()
    datasets = Dataset.objects.restrict(user, "view_details")
    version_refs = {
        str(pk) for pk in DatasetVersion.objects.filter(dataset__in=datasets).values_list("pk", flat=True)
    }
    groups = set(user.groups.values_list("name", flat=True))
    visible: set[int] = set()
    rows = LineageNode.objects.values_list("pk", "kind", "reference", "effective_facts__summary__owners")
    for pk, kind, reference, owners in rows.iterator(chunk_size=5000):
        if kind == AssetKind.DATASET_VERSION:
            if reference in version_refs:
                visible.add(pk)
        elif groups and isinstance(owners, list) and groups.intersection(owners):
            visible.add(pk)
    return visible


def may_see_node(user: Any, node: LineageNode) -> bool:
    """Whether ``user`` may see this lineage node and its facts."""
    if reads_everything(user):
        return True
    if node.kind == AssetKind.DATASET_VERSION:
        version = DatasetVersion.objects.select_related("dataset").filter(pk=int(node.reference)).first()
        return version is not None and may_see_details(user, version.dataset)
    owners = (node.effective_facts or {}).get("summary", {}).get("owners") or []
    return bool(set(user.groups.values_list("name", flat=True)).intersection(owners))


def ensure_node_visible(user: Any, node: LineageNode) -> None:
    """Raise ``PermissionDenied`` unless ``user`` may see ``node``."""
    if not may_see_node(user, node):
        who = user.get_username() if user.is_authenticated else "an anonymous user"
        raise PermissionDenied(
            f"{who} may not see the lineage of {node.label}: only the teams that own it, "
            "the steward of its data, auditors and admins may",
            field="node",
        )
