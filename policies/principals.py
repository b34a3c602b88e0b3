"""Principal kinds that apps above ``policies`` register (``serving`` registers consumers).

``policies`` sits below ``serving`` and never imports it: an app whose models
are principals registers a ``PrincipalKind`` in its ``AppConfig.ready()``,
saying how to turn one of its objects into ``PrincipalFacts``, how to list
them (simulation) and how to find one by name (API calls, the console).
An object of a kind nobody registered is not a principal: a decision about
it is an error, which denies (fail closed).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from pedigree.errors import InvalidInput
from policies.requests import PrincipalFacts


class PrincipalKind(NamedTuple):
    """How ``policies`` reads one kind of principal object (e.g. a consumer)."""

    kind: str  # the Cedar entity type, e.g. "Consumer"
    model: type  # the class whose instances are principals of this kind
    facts: Callable[[Any], PrincipalFacts]
    cache_key: Callable[[Any], tuple[Any, ...]]  # names the object's facts by version
    label: Callable[[Any], str]  # its name, as the policies and the decision log say it
    all: Callable[[], Sequence[Any]]  # every principal of this kind, ordered by name
    named: Callable[[str], Any | None]  # the one with this name, or None


# Read-only outside this module: ``decide`` looks a principal's type up here
# directly (one dict lookup on every decision, cached ones included).
kinds_by_model: dict[type, PrincipalKind] = {}
_by_kind: dict[str, PrincipalKind] = {}


def register_principal_kind(principal_kind: PrincipalKind) -> None:
    """Register a kind of principal objects (idempotent: a later one replaces it)."""
    kinds_by_model[principal_kind.model] = principal_kind
    _by_kind[principal_kind.kind] = principal_kind


def principal_kind_of(principal: Any) -> PrincipalKind | None:
    """The registered kind ``principal`` is an instance of, or None."""
    return kinds_by_model.get(type(principal))


def principal_kind(kind: str) -> PrincipalKind:
    """The registered kind named ``kind``; ``InvalidInput`` when none is."""
    found = _by_kind.get(kind)
    if found is None:
        raise InvalidInput(f"no principals of kind {kind!r} are registered", field="principal")
    return found


def registered_principals(kind: str) -> list[Any]:
    """Every principal of ``kind`` (none when the kind is not registered)."""
    found = _by_kind.get(kind)
    return list(found.all()) if found is not None else []
