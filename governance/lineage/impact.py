"""Impact reports: every asset downstream of one asset, with the path to it.

Before a revocation the report is a preview ("what would this revocation
touch?"): the propagation runs as a dry run with the asset marked revoked,
nothing is written. After it, the report shows what happened. Rendered as
JSON, CSV or HTML.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from typing import Any

from django.template.loader import render_to_string
from django.utils import timezone

from governance.lineage.propagation import refresh
from governance.lineage.queries import chunks, shortest_paths, walk
from governance.lineage.status import node_status_now
from governance.models.lineage import LineageNode


@dataclass(frozen=True)
class ImpactRow:
    """One downstream asset: where it is, how it is reached, its status now and after."""

    node_id: int
    kind: str
    reference: str
    label: str
    depth: int
    path: tuple[tuple[str, str], ...]  # (label, relation into it), from the subject
    status_now: str
    status_after: str
    quarantined_by_subject: bool

    @property
    def path_text(self) -> str:
        text = self.path[0][0]
        for label, relation in self.path[1:]:
            text += f" → [{relation}] {label}"
        return text

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.node_id,
            "kind": self.kind,
            "reference": self.reference,
            "label": self.label,
            "depth": self.depth,
            "path": [{"label": label, "relation": relation} for label, relation in self.path],
            "path_text": self.path_text,
            "status_now": self.status_now,
            "status_after": self.status_after,
            "quarantined_by_subject": self.quarantined_by_subject,
        }


@dataclass
class ImpactReport:
    """The impact of revoking (or having revoked) ``subject``."""

    subject: LineageNode
    mode: str  # "preview" or "actual"
    generated_at: str
    rows: list[ImpactRow] = field(default_factory=list)

    @property
    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = {"downstream": len(self.rows), "quarantined": 0}
        for row in self.rows:
            counts[row.kind] = counts.get(row.kind, 0) + 1
            if row.quarantined_by_subject:
                counts["quarantined"] += 1
        return counts

    def as_json(self) -> dict[str, Any]:
        """The report as plain JSON."""
        return {
            "subject": {
                "id": self.subject.pk,
                "kind": self.subject.kind,
                "reference": self.subject.reference,
                "label": self.subject.label,
                "status": node_status_now(self.subject),
            },
            "mode": self.mode,
            "generated_at": self.generated_at,
            "counts": self.counts,
            "assets": [row.as_json() for row in self.rows],
        }

    def as_csv(self) -> str:
        """One line per downstream asset."""
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(["id", "kind", "reference", "label", "depth", "status_now", "status_after", "quarantined_by_subject", "path"])
        for row in self.rows:
            writer.writerow(
                [row.node_id, row.kind, row.reference, row.label, row.depth, row.status_now, row.status_after,
                 "yes" if row.quarantined_by_subject else "no", row.path_text]
            )
        return out.getvalue()

    def as_html(self) -> str:
        """A standalone HTML page (escaped by the template engine)."""
        return render_to_string("admin/governance/lineage/impact.html", {"report": self, "data": self.as_json()})


def impact_report(subject: LineageNode) -> ImpactReport:
    """What revoking ``subject`` would touch (while it is active) or touched (once it is not)."""
    subject.refresh_from_db()
    preview = subject.own_status == "active"
    reached = walk([subject.pk], direction="down")
    reached.pop(subject.pk, None)
    paths = shortest_paths(subject.pk, reached, direction="down")
    if preview:
        own = {**subject.own_facts, "status": "revoked", "status_reason": "impact preview"}
        after = refresh([subject.pk], dry_run=True, own_overrides={subject.pk: own}).effective
    else:
        after = {}
    nodes: dict[int, LineageNode] = {}
    for batch in chunks(sorted(reached)):
        for node in LineageNode.objects.filter(pk__in=batch).only(
            "id", "kind", "reference", "label", "effective_status", "effective_quarantine"
        ):
            nodes[node.pk] = node
    labels = {node_id: node.label for node_id, node in nodes.items()} | {subject.pk: subject.label}
    me = str(subject.pk)
    rows = []
    for node_id in sorted(reached, key=lambda n: (reached[n], nodes[n].kind, nodes[n].label, n)):
        node = nodes[node_id]
        effective_after = after.get(node_id, node.effective_quarantine)
        rows.append(
            ImpactRow(
                node_id=node_id,
                kind=node.kind,
                reference=node.reference,
                label=node.label,
                depth=reached[node_id],
                path=tuple((labels[step], relation) for step, relation in paths[node_id]),
                status_now=node_status_now(node),
                status_after=effective_after.get("status", node_status_now(node)),
                quarantined_by_subject=me in effective_after.get("quarantine", {}),
            )
        )
    return ImpactReport(
        subject=subject,
        mode="preview" if preview else "actual",
        generated_at=timezone.now().isoformat(),
        rows=rows,
    )
