"""Own facts, and the pure rules that combine them into effective facts.

No database here: ``combine`` takes a node's own facts and its parents'
stored effective facts and returns the node's effective facts, following the
table in DESIGN.md:

===========================  =============================================
fact                         rule over parents
===========================  =============================================
PII entity types             union (a redaction edge stops the types it removed)
PII scan incomplete          union (the owning teams of data upstream whose
                             PII scan is unscanned, running or failed)
licences                     union of terms; permissions most restrictive
owners                       union
allowed purposes             intersection
residency regions            intersection
revoked / expired upstream   any -> quarantined (unless an admin exception)
expiry instants              each source's kept; the earliest is the summary
===========================  =============================================

Expiry is a time-bound fact: an asset whose own expiry (or one upstream of
it) has passed reads as expired (or quarantined) from that instant, whether
or not the hourly job has run (``governance.lineage.status``).

Every value remembers, per source asset that declared it, the parent it came
through and its distance (``{source_id: [via_parent_id, distance]}``); the
explanation path is rebuilt by following ``via`` upstream (see
``governance.lineage.explain``). Keeping one pointer per source keeps stored
facts small even for deep chains, and the choice is deterministic: the
shortest path, ties broken by the smaller parent id.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from django.utils.dateparse import parse_datetime

from governance.models.lineage import OWN_STATUSES, PROPAGATING_RELATIONS, AssetKind
from pedigree.errors import InvalidInput

UNION_FACTS = ("pii_types", "owners", "licences", "pii_scan_incomplete")
CONSTRAINT_FACTS = ("allowed_purposes", "residency_regions")
ALL_PII = "*"
ANYWHERE = "global"  # the residency region that means "anywhere"

Sources = dict[str, list[Any]]  # source node id -> [via parent id | None, distance]


@dataclass(frozen=True)
class LicenceTerms:
    """One licence as it applies to one asset: its id, what it permits, to whom credit is due."""

    id: str
    training: bool
    commercial_use: bool
    attribution: bool
    share_alike: bool
    holder: str = ""

    @property
    def key(self) -> str:
        """A stable key: terms with equal keys are the same obligation."""
        flags = "".join("1" if flag else "0" for flag in (self.training, self.commercial_use, self.attribution, self.share_alike))
        return f"{self.id}|{flags}|{self.holder}"

    @property
    def proprietary(self) -> bool:
        return self.id.lower() in {"proprietary", "other"}

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "training": self.training,
            "commercial_use": self.commercial_use,
            "attribution": self.attribution,
            "share_alike": self.share_alike,
            "holder": self.holder,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> LicenceTerms:
        try:
            return cls(
                id=str(data["id"]),
                training=bool(data["training"]),
                commercial_use=bool(data["commercial_use"]),
                attribution=bool(data["attribution"]),
                share_alike=bool(data["share_alike"]),
                holder=str(data.get("holder", "")),
            )
        except KeyError as missing:
            raise InvalidInput(
                f"licence terms need id, training, commercial_use, attribution and share_alike; {missing} is missing",
                field="licences",
            ) from None


@dataclass(frozen=True)
class OwnFacts:
    """What an asset itself declares, before anything is inherited.

    ``allowed_purposes`` and ``residency_regions`` of ``None`` mean "this asset
    adds no restriction" (a model adds none of its own); an empty list means
    "allows nothing" (a dataset that declared no purposes).
    """

    status: str = "active"
    status_reason: str = ""
    pii_types: tuple[str, ...] = ()
    # The owning team, when this is data whose PII scan is not complete (no
    # completed scan, one running, or the latest failed): nobody knows what
    # personal data it holds, so what is made from it inherits that.
    pii_scan_incomplete: tuple[str, ...] = ()
    licences: tuple[LicenceTerms, ...] = ()
    owners: tuple[str, ...] = ()
    allowed_purposes: tuple[str, ...] | None = None
    residency_regions: tuple[str, ...] | None = None
    expires_at: str | None = None  # the instant it expires, ISO 8601 in UTC

    def __post_init__(self) -> None:
        if self.status not in OWN_STATUSES:
            raise InvalidInput(
                f"own status {self.status!r} is not one of {', '.join(sorted(OWN_STATUSES))}", field="status"
            )
        if self.expires_at is not None:
            instant = parse_datetime(self.expires_at) if isinstance(self.expires_at, str) else None
            if instant is None or instant.tzinfo is None:
                raise InvalidInput(
                    f"expires_at {self.expires_at!r} is not an ISO 8601 date and time with a time zone",
                    field="expires_at",
                )
            object.__setattr__(self, "expires_at", instant.astimezone(dt.UTC).isoformat())

    def as_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "status_reason": self.status_reason,
            "pii_types": sorted(set(self.pii_types)),
            "pii_scan_incomplete": sorted(set(self.pii_scan_incomplete)),
            "licences": [terms.as_json() for terms in sorted(set(self.licences), key=lambda t: t.key)],
            "owners": sorted(set(self.owners)),
            "allowed_purposes": None if self.allowed_purposes is None else sorted(set(self.allowed_purposes)),
            "residency_regions": None if self.residency_regions is None else sorted(set(self.residency_regions)),
            **({"expires_at": self.expires_at} if self.expires_at is not None else {}),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> OwnFacts:
        """Build own facts from plain JSON (as another app or an API client gives them)."""
        unknown = set(data) - {
            "status", "status_reason", "pii_types", "pii_scan_incomplete", "licences", "owners", "allowed_purposes",
            "residency_regions", "expires_at",
        }
        if unknown:
            raise InvalidInput(f"unknown fact {sorted(unknown)[0]!r}", field=sorted(unknown)[0])

        def optional(name: str) -> tuple[str, ...] | None:
            value = data.get(name)
            return None if value is None else tuple(str(item) for item in value)

        return cls(
            status=str(data.get("status", "active")),
            status_reason=str(data.get("status_reason", "")),
            pii_types=tuple(str(item) for item in data.get("pii_types", ())),
            pii_scan_incomplete=tuple(str(item) for item in data.get("pii_scan_incomplete", ())),
            licences=tuple(
                item if isinstance(item, LicenceTerms) else LicenceTerms.from_json(item)
                for item in data.get("licences", ())
            ),
            owners=tuple(str(item) for item in data.get("owners", ())),
            allowed_purposes=optional("allowed_purposes"),
            residency_regions=optional("residency_regions"),
            expires_at=None if data.get("expires_at") is None else str(data["expires_at"]),
        )


@dataclass(frozen=True)
class ParentInput:
    """One incoming edge as the combination sees it."""

    parent_id: int
    relation: str
    removes_pii_types: tuple[str, ...]
    effective: Mapping[str, Any]


@dataclass(frozen=True)
class ExceptionInput:
    """A valid quarantine exception of the node being combined, for one cause."""

    exception_id: int
    cause_id: int
    expires_at: dt.datetime


def constraint_key(values: Iterable[str]) -> str:
    """The key under which a restriction (a set of allowed values) is stored."""
    return ",".join(sorted(set(values)))


def _better(candidate: list[Any], current: list[Any] | None) -> bool:
    if current is None:
        return True
    via_c = -1 if candidate[0] is None else candidate[0]
    via_o = -1 if current[0] is None else current[0]
    return (candidate[1], via_c) < (current[1], via_o)


def _offer_source(sources: Sources, source: str, via: int | None, distance: int) -> None:
    candidate = [via, distance]
    if _better(candidate, sources.get(source)):
        sources[source] = candidate


def _offer(table: dict[str, Sources], value: str, source: str, via: int | None, distance: int) -> None:
    _offer_source(table.setdefault(value, {}), source, via, distance)


def _removed(value: str, removes: Sequence[str]) -> bool:
    return ALL_PII in removes or value in removes


CATEGORIES = ("pii_types", "pii_scan_incomplete", "owners", "licences", "allowed_purposes", "residency_regions", "quarantine")
# Stored blocks that belong to a category besides its own name.
_COMPANIONS = {"licences": ("licence_terms",), "quarantine": ("excepted", "expiries")}


def category_blocks(category: str) -> tuple[str, ...]:
    """The stored blocks of one category (e.g. licences and their terms)."""
    return (category, *_COMPANIONS.get(category, ()))


def changed_categories(before: Mapping[str, Any], after: Mapping[str, Any]) -> set[str]:
    """The categories whose stored blocks differ between two effective fact sets."""
    return {
        category
        for category in CATEGORIES
        if any(before.get(block) != after.get(block) for block in category_blocks(category))
    }


def combine(
    *,
    node_id: int,
    kind: str,
    own: Mapping[str, Any],
    parents: Sequence[ParentInput],
    exceptions: Sequence[ExceptionInput] = (),
    only: Iterable[str] | None = None,
    previous: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The effective facts of one node, from its own facts and its parents' effective facts.

    ``own`` is ``OwnFacts.as_json()``; each parent's ``effective`` is what this
    function returned for it. Parents joined by a non-propagating relation
    (``evaluated_on``, ``produced_by``) contribute nothing.

    With ``only`` (some of ``CATEGORIES``) and ``previous`` (this node's stored
    effective facts), only those categories are recomputed and the rest are
    kept: a revocation downstream touches the quarantine and nothing else.
    """
    me = str(node_id)
    wanted = set(CATEGORIES if only is None or previous is None else only)
    result: dict[str, Any] = {}
    if previous is not None:
        for category in set(CATEGORIES) - wanted:
            for block in category_blocks(category):
                result[block] = previous.get(block, {})
    for category in wanted:
        for block in category_blocks(category):
            result[block] = {}

    if "pii_types" in wanted:
        for value in own.get("pii_types", ()):
            _offer(result["pii_types"], value, me, None, 0)
    if "owners" in wanted:
        for value in own.get("owners", ()):
            _offer(result["owners"], value, me, None, 0)
    if "pii_scan_incomplete" in wanted:
        for value in own.get("pii_scan_incomplete", ()):
            _offer(result["pii_scan_incomplete"], value, me, None, 0)
    if "licences" in wanted:
        for raw in own.get("licences", ()):
            terms = LicenceTerms.from_json(raw)
            result["licence_terms"][terms.key] = terms.as_json()
            _offer(result["licences"], terms.key, me, None, 0)
    for name in CONSTRAINT_FACTS:
        if name in wanted and own.get(name) is not None:
            _offer(result[name], constraint_key(own[name]), me, None, 0)
    own_status = own.get("status", "active")
    if "quarantine" in wanted and own_status != "active":
        result["quarantine"][me] = [None, 0]
    if "quarantine" in wanted and own.get("expires_at"):
        result["expiries"][me] = own["expires_at"]

    value_facts = [name for name in (*UNION_FACTS, *CONSTRAINT_FACTS) if name in wanted]
    by_cause = {exc.cause_id: exc for exc in exceptions}
    for parent in sorted(parents, key=lambda p: p.parent_id):
        if parent.relation not in PROPAGATING_RELATIONS:
            continue
        eff = parent.effective
        via = parent.parent_id
        for name in value_facts:
            table = result[name]
            for value, sources in eff.get(name, {}).items():
                if name == "pii_types" and _removed(value, parent.removes_pii_types):
                    continue
                entry = table.setdefault(value, {})
                # Parents come in ascending id order, so an equal distance from a
                # later parent never wins: only a strictly shorter one replaces.
                for source, pair in sources.items():
                    distance = pair[1] + 1
                    current = entry.get(source)
                    if current is None or distance < current[1]:
                        entry[source] = [via, distance]
        if "licences" in wanted:
            result["licence_terms"].update(eff.get("licence_terms", {}))
        if "quarantine" not in wanted:
            continue
        for source, instant in eff.get("expiries", {}).items():
            # An exception for a cause covers its expiry as well as its revocation.
            if source == me or int(source) in by_cause:
                continue
            current = result["expiries"].get(source)
            if current is None or instant < current:
                result["expiries"][source] = instant
        for source, (_, distance) in eff.get("quarantine", {}).items():
            exception = by_cause.get(int(source))
            if exception is not None and source != me:
                current = result["excepted"].get(source)
                candidate = [via, distance + 1]
                if current is None or _better(candidate, [current["via"], current["distance"]]):
                    result["excepted"][source] = {
                        "exception": exception.exception_id,
                        "expires_at": exception.expires_at.isoformat(),
                        "via": via,
                        "distance": distance + 1,
                    }
                continue
            _offer_source(result["quarantine"], source, via, distance + 1)

    if "quarantine" not in wanted and previous is not None and "status" in previous:
        status = previous["status"]  # the status follows the quarantine, which did not change
    elif own_status != "active":
        status = own_status
    elif result["quarantine"]:
        status = "quarantined"
    else:
        status = "active"
    result["status"] = status
    result["status_reason"] = own.get("status_reason", "")
    result["summary"] = summarise(
        result, kind=kind, recomputed=wanted, previous=previous.get("summary") if previous else None
    )
    result["status_summary"] = {key: result["summary"][key] for key in _SUMMARY_PARTS["quarantine"]}
    return result


_SUMMARY_PARTS = {
    "pii_types": ("pii_types",),
    "pii_scan_incomplete": ("pii_scan_incomplete",),
    "owners": ("owners",),
    "licences": ("licences", "permissions", "obligations", "conflicts"),
    "allowed_purposes": ("allowed_purposes",),
    "residency_regions": ("residency_regions",),
    "quarantine": ("status", "quarantined", "exceptions_expire_at", "expires_at"),
}


_TERMS_BY_KEY: dict[str, LicenceTerms] = {}


def _terms_of(key: str, raw: Mapping[str, Any]) -> LicenceTerms:
    # A key names its terms completely (id, flags, holder), so parse each once.
    terms = _TERMS_BY_KEY.get(key)
    if terms is None:
        terms = _TERMS_BY_KEY[key] = LicenceTerms.from_json(raw)
    return terms


def summarise(
    effective: Mapping[str, Any],
    *,
    kind: str,
    recomputed: Iterable[str] | None = None,
    previous: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The plain values a policy needs: sets, combined permissions, obligations, conflicts.

    With ``recomputed`` and the ``previous`` summary, the parts of categories
    that were not recomputed are copied over.
    """
    parts = set(CATEGORIES if recomputed is None or not previous else recomputed)
    summary: dict[str, Any] = {}
    if previous:
        for category in set(CATEGORIES) - parts:
            for name in _SUMMARY_PARTS[category]:
                summary[name] = previous.get(name)
    if "pii_types" in parts:
        summary["pii_types"] = sorted(effective["pii_types"])
    if "pii_scan_incomplete" in parts:
        summary["pii_scan_incomplete"] = sorted(effective.get("pii_scan_incomplete", {}))
    if "owners" in parts:
        summary["owners"] = sorted(effective["owners"])
    if "licences" in parts:
        terms = [
            _terms_of(key, effective["licence_terms"][key])
            for key in sorted(effective["licences"])
        ]
        summary["licences"] = sorted({t.id for t in terms})
        summary["permissions"] = combined_permissions(terms)
        summary["obligations"] = obligations(terms)
        summary["conflicts"] = conflicts(terms, kind=kind)
    for name in CONSTRAINT_FACTS:
        if name not in parts:
            continue
        allowed: set[str] | None = None
        anywhere = False
        for key in effective[name]:
            values = {item for item in key.split(",") if item}
            if name == "residency_regions" and ANYWHERE in values:
                anywhere = True  # "global" allows every region: it restricts nothing
                continue
            allowed = values if allowed is None else allowed & values
        if allowed is None:
            summary[name] = [ANYWHERE] if anywhere else None
        else:
            summary[name] = sorted(allowed)
    if "quarantine" in parts:
        expiries = [item["expires_at"] for item in effective.get("excepted", {}).values()]
        summary["status"] = effective["status"]
        summary["quarantined"] = effective["status"] != "active"
        summary["exceptions_expire_at"] = min(expiries) if expiries else None
        instants = list(effective.get("expiries", {}).values())
        summary["expires_at"] = min(instants) if instants else None
    return {name: summary.get(name) for name in (
        "status", "quarantined", "pii_types", "pii_scan_incomplete", "owners", "licences", "allowed_purposes",
        "residency_regions", "permissions", "obligations", "conflicts", "exceptions_expire_at", "expires_at",
    )}


def combined_permissions(terms: Sequence[LicenceTerms]) -> dict[str, bool]:
    """The most restrictive combination: a use is permitted only if every licence permits it.

    With no licence known at all nothing is permitted (fail closed).
    """
    if not terms:
        return {"training": False, "commercial_use": False, "attribution": False, "share_alike": False}
    return {
        "training": all(t.training for t in terms),
        "commercial_use": all(t.commercial_use for t in terms),
        "attribution": any(t.attribution for t in terms),
        "share_alike": any(t.share_alike for t in terms),
    }


def obligations(terms: Sequence[LicenceTerms]) -> dict[str, Any]:
    """The duties the combined licences impose: whom to credit, what to share alike, what not to do."""
    attribution = sorted(
        {(t.id, t.holder) for t in terms if t.attribution},
    )
    return {
        "attribution": [{"licence": licence, "credit": holder or f"the licensors of {licence}"} for licence, holder in attribution],
        "share_alike": sorted({t.id for t in terms if t.share_alike}),
        "non_commercial": sorted({t.id for t in terms if not t.commercial_use}),
        "no_training": sorted({t.id for t in terms if not t.training}),
    }


def conflicts(terms: Sequence[LicenceTerms], *, kind: str) -> list[dict[str, Any]]:
    """Licence combinations that cannot all be honoured at once.

    - share-alike data mixed with proprietary data, or with a different
      share-alike licence, or with a licence that restricts more (e.g. NC):
      derivatives cannot carry the share-alike licence as it demands;
    - a model (or endpoint) built on data whose licence forbids training.
    """
    found: dict[tuple[str, ...], dict[str, Any]] = {}
    by_id: dict[str, list[LicenceTerms]] = {}
    for t in terms:
        by_id.setdefault(t.id, []).append(t)
    share_alike = [t for t in terms if t.share_alike]
    for sa in share_alike:
        for other in terms:
            if other.id == sa.id:
                continue
            reason = None
            if other.proprietary:
                reason = f"{sa.id} is share-alike: derivatives must carry it, but {other.id} data is under proprietary terms"
            elif other.share_alike:
                reason = f"{sa.id} and {other.id} are both share-alike: a derivative cannot carry both"
            elif (sa.training and not other.training) or (sa.commercial_use and not other.commercial_use):
                reason = f"{sa.id} is share-alike, but {other.id} adds restrictions {sa.id} does not allow"
            if reason is not None:
                pair = tuple(sorted((sa.id, other.id)))
                found.setdefault(("share_alike",) + pair, {"code": "share_alike", "licences": list(pair), "message": reason})
    if kind in {AssetKind.MODEL_VERSION.value, AssetKind.ENDPOINT.value}:
        for t in terms:
            if not t.training:
                found.setdefault(
                    ("no_training", t.id),
                    {"code": "no_training", "licences": [t.id], "message": f"{t.id} does not permit training a model on the data"},
                )
    return [found[key] for key in sorted(found)]
