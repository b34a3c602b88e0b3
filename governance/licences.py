"""The bundled licence list and what each licence permits.

``proprietary`` and ``other`` need the licence text; ``other`` permits nothing
until a steward records what its text allows (fail closed).
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path

_LICENCES_FILE = Path(__file__).with_name("data") / "licences.json"


@dataclass(frozen=True)
class Permissions:
    """What a licence allows a model trained on the data to do, and demands of it."""

    training: bool
    commercial_use: bool
    attribution: bool
    share_alike: bool

    def as_dict(self) -> dict[str, bool]:
        return {
            "training": self.training,
            "commercial_use": self.commercial_use,
            "attribution": self.attribution,
            "share_alike": self.share_alike,
        }


@dataclass(frozen=True)
class Licence:
    id: str
    name: str
    permissions: Permissions
    requires_text: bool = False


@functools.cache
def all_licences() -> dict[str, Licence]:
    """Every bundled licence by SPDX id."""
    raw = json.loads(_LICENCES_FILE.read_text())
    licences = {}
    for entry in raw["licences"]:
        licences[entry["id"]] = Licence(
            id=entry["id"],
            name=entry["name"],
            permissions=Permissions(
                training=entry["training"],
                commercial_use=entry["commercial_use"],
                attribution=entry["attribution"],
                share_alike=entry["share_alike"],
            ),
            requires_text=entry.get("requires_text", False),
        )
    return licences


def get_licence(licence_id: str) -> Licence | None:
    """The licence with this id, matched without regard to case, or None."""
    licences = all_licences()
    if licence_id in licences:
        return licences[licence_id]
    lowered = {key.lower(): value for key, value in licences.items()}
    return lowered.get(licence_id.lower())
