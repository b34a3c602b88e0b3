"""A server-rendered SVG picture of an asset's lineage, coloured by status.

Reusable for every asset page: the dataset version, model version and
endpoint pages of the console show it with the facts beside it. Columns are
distances from the asset (upstream to the left, downstream to the right);
every label is escaped, and every box but the focus links to its asset's page.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.template.loader import render_to_string
from django.urls import NoReverseMatch, reverse
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from governance.lineage.queries import edges_into, walk
from governance.lineage.status import node_status_now
from governance.models.lineage import AssetKind, LineageNode

BOX_WIDTH, BOX_HEIGHT = 190, 46
COLUMN_GAP, ROW_GAP, MARGIN = 80, 18, 20

COLOURS = {
    "active": ("#2e7d32", "#e8f5e9"),
    "quarantined": ("#e65100", "#fff3e0"),
    "revoked": ("#c62828", "#ffebee"),
    "expired": ("#616161", "#eeeeee"),
}
RUN_COLOURS = ("#1565c0", "#e3f2fd")

_KIND_URLS: dict[str, Callable[[str], str]] = {}


def register_kind_url(kind: str, url_of: Callable[[str], str]) -> None:
    """Let the picture link nodes of ``kind`` to their pages (apps call this in ``ready``)."""
    _KIND_URLS[kind] = url_of


def _dataset_version_url(reference: str) -> str:
    return reverse("admin:governance_datasetversion_change", args=[int(reference)])


register_kind_url(AssetKind.DATASET_VERSION, _dataset_version_url)


# Kinds without a model of their own yet: their console page is a proxy of
# LineageNode (governance/models/lineage_assets.py), addressed by the node's id.
# An app that registers a URL for the kind (register_kind_url) takes precedence.
NODE_PAGES = {
    AssetKind.MODEL_VERSION.value: "admin:governance_lineagemodelversion_change",
    AssetKind.ENDPOINT.value: "admin:governance_lineageendpoint_change",
}


def node_url(node: LineageNode) -> str:
    """The console page of the asset behind a node (the lineage node page for runs)."""
    try:
        if node.kind in _KIND_URLS:
            return _KIND_URLS[node.kind](node.reference)
        return reverse(NODE_PAGES.get(node.kind, "admin:governance_lineagenode_change"), args=[node.pk])
    except (NoReverseMatch, ValueError):
        return ""


def status_colours(status: str, kind: str = "") -> tuple[str, str]:
    """(stroke, fill) of a status in the picture; runs have their own colour."""
    return RUN_COLOURS if kind == AssetKind.RUN else COLOURS.get(status, COLOURS["active"])


def _truncate(text: str, limit: int = 26) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def render_lineage_svg(focus: LineageNode, *, depth: int = 3, max_nodes: int = 60) -> str:
    """The lineage of ``focus`` up to ``depth`` edges each way, at most ``max_nodes`` assets."""
    up = walk([focus.pk], direction="up", max_depth=depth)
    down = walk([focus.pk], direction="down", max_depth=depth)
    column: dict[int, int] = {node_id: -d for node_id, d in up.items()}
    column.update({node_id: d for node_id, d in down.items()})
    column[focus.pk] = 0
    if len(column) > max_nodes:
        keep = sorted(column, key=lambda n: (abs(column[n]), n))[:max_nodes]
        column = {n: column[n] for n in keep}
    hidden = len(up) + len(down) - 1 - len(column)  # both walks include the focus
    nodes = {node.pk: node for node in LineageNode.objects.filter(pk__in=list(column))}
    edges = [edge for edge in edges_into(column) if edge.upstream_id in column]

    by_column: dict[int, list[LineageNode]] = {}
    for node_id, col in column.items():
        by_column.setdefault(col, []).append(nodes[node_id])
    columns = sorted(by_column)
    tallest = max(len(items) for items in by_column.values())
    height = MARGIN * 2 + tallest * (BOX_HEIGHT + ROW_GAP) + 30
    width = MARGIN * 2 + len(columns) * (BOX_WIDTH + COLUMN_GAP) - COLUMN_GAP
    position: dict[int, tuple[int, int]] = {}
    for index, col in enumerate(columns):
        items = sorted(by_column[col], key=lambda n: (n.kind, n.label, n.pk))
        offset = (tallest - len(items)) * (BOX_HEIGHT + ROW_GAP) // 2
        for row, node in enumerate(items):
            position[node.pk] = (MARGIN + index * (BOX_WIDTH + COLUMN_GAP), MARGIN + offset + row * (BOX_HEIGHT + ROW_GAP))

    parts: list[str] = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="pedigree-lineage-svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="lineage of {escape(focus.label)}" '
        # On a page: shrink a wide picture to fit (down to 720 px wide, then scroll), never enlarge.
        f'style="max-width:100%;height:auto;min-width:{min(width, 720)}px" '
        'font-family="system-ui, sans-serif" font-size="11">',
        "<title>" + escape(f"Lineage of {focus.kind} {focus.label}") + "</title>",
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" '
        'orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" fill="#777"/></marker></defs>',
    ]
    for edge in edges:
        x1, y1 = position[edge.upstream_id]
        x2, y2 = position[edge.downstream_id]
        sx, sy, ex, ey = x1 + BOX_WIDTH, y1 + BOX_HEIGHT // 2, x2, y2 + BOX_HEIGHT // 2
        if ex <= sx:  # same column (should not happen in a layered DAG)
            ex, sx = x2 + BOX_WIDTH // 2, x1 + BOX_WIDTH // 2
        mid = (sx + ex) // 2
        dash = ' stroke-dasharray="5,3"' if edge.removes_pii_types else ""
        parts.append(
            f'<path class="edge edge-{escape(edge.relation)}" d="M {sx} {sy} C {mid} {sy}, {mid} {ey}, {ex} {ey}" '
            f'fill="none" stroke="#777" stroke-width="1.2"{dash} marker-end="url(#arrow)"/>'
        )
        label = edge.relation.replace("_", " ") + (" (redacted)" if edge.removes_pii_types else "")
        parts.append(f'<text x="{mid}" y="{(sy + ey) // 2 - 3}" text-anchor="middle" fill="#555" font-size="9">{escape(label)}</text>')
    for node_id, (x, y) in position.items():
        node = nodes[node_id]
        node_status = node_status_now(node)
        stroke, fill = status_colours(node_status, node.kind)
        width_attr = 3 if node_id == focus.pk else 1.5
        url = node_url(node)
        box = (
            f'<g class="node status-{escape(node_status)} kind-{escape(node.kind)}" data-node="{node_id}">'
            f'<title>{escape(f"{node.kind} {node.label}: {node_status}")}</title>'
            f'<rect x="{x}" y="{y}" width="{BOX_WIDTH}" height="{BOX_HEIGHT}" rx="6" fill="{fill}" stroke="{stroke}" stroke-width="{width_attr}"/>'
            f'<text x="{x + 8}" y="{y + 18}" font-weight="600" fill="#222">{escape(_truncate(node.label))}</text>'
            f'<text x="{x + 8}" y="{y + 35}" fill="{stroke}">{escape(node.kind.replace("_", " "))} · {escape(node_status)}</text>'
            "</g>"
        )
        parts.append(f'<a href="{escape(url)}">{box}</a>' if url and node_id != focus.pk else box)
    legend_y = height - 12
    x = MARGIN
    for status, (stroke, fill) in COLOURS.items():
        parts.append(f'<rect x="{x}" y="{legend_y - 9}" width="10" height="10" fill="{fill}" stroke="{stroke}"/>')
        parts.append(f'<text x="{x + 14}" y="{legend_y}" fill="#444">{status}</text>')
        x += 90
    if hidden > 0:
        parts.append(f'<text x="{x}" y="{legend_y}" fill="#444">… {hidden} more not shown</text>')
    parts.append("</svg>")
    return "".join(parts)


def lineage_panel_html(node: LineageNode, *, depth: int = 3, impact_url: str = "") -> SafeString:
    """The console panel: the picture with the effective facts and their explanations beside it."""
    from governance.lineage.explain import effective_facts

    facts: dict[str, Any] = effective_facts(node=node, explain=True).as_dict()
    node.refresh_from_db()
    svg = mark_safe(render_lineage_svg(node, depth=depth))  # built from escaped parts above
    return mark_safe(
        render_to_string(
            "admin/governance/lineage/panel.html", {"svg": svg, "facts": facts, "node": node, "impact_url": impact_url}
        )
    )
