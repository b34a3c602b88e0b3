"""Lineage: the asset graph, fact propagation, revocation and impact.

Other apps use two things from here:

- ``governance.lineage.graph``: the interface that adds assets and edges
  (``register_asset``, ``add_edge``, ``remove_edge``) and walks the graph
  (``upstream``, ``downstream``). Nothing else writes the lineage tables.
- ``effective_facts(kind, reference)``: an asset's facts combined over
  everything upstream, stored and kept current, with a ``facts_version`` to
  cache by and, on request, the path that explains each fact.
"""

from __future__ import annotations

from typing import Any


def effective_facts(*args: Any, **kwargs: Any) -> Any:
    """See ``governance.lineage.explain.effective_facts`` (imported lazily: apps load first)."""
    from governance.lineage.explain import effective_facts as read

    return read(*args, **kwargs)
