"""Deciding, Django-facing: the policy set in force, ``decide`` and its cache.

Every governed action asks ``decide(principal, action, resource, context)``.

- The policy set comes from ``PEDIGREE_POLICY_DIR`` and is reloaded when its
  files change (validated first; an invalid change keeps the last good set).
- Decisions about versioned facts (consumers, assets with ``facts_version``)
  are cached by (principal, its facts version, action, resource, its facts
  version, context, policy set digest), so a repeated question costs a dict
  lookup and a change of any of those misses the cache. Facts bound to time
  (an expiry, a lapsing quarantine exception) end a cached decision at their
  instant (``ResourceFacts.valid_until``), and facts read before that instant
  are not decided on after it.
- Any error denies, and is logged as an ``error`` decision (fail closed).
- Every decision goes to the decision log (``policies.decision_log``).
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

from pedigree.errors import InvalidInput
from policies.config import policy_directory, policy_settings
from policies.decision_log import decision_log
from policies.evaluator import Evaluator
from policies.facts import principal_facts, resource_facts
from policies.loading import PolicyBundle, PolicyInvalid
from policies.principals import kinds_by_model, principal_kind_of
from policies.requests import (
    ACTIONS,
    Decision,
    DecisionRequest,
    PrincipalFacts,
    ResourceFacts,
    error_decision,
)
from policies.store import PolicyStore

logger = logging.getLogger(__name__)

store = PolicyStore()
evaluator = Evaluator()
# key -> (decision, the instant it ends in seconds since the epoch, or None)
_decision_cache: dict[tuple[Any, ...], tuple[Decision, float | None]] = {}
_DECISION_CACHE_MAX = 100_000


def current_policies() -> PolicyBundle:
    """The policy set in force, reloaded first if its files changed."""
    config = policy_settings()
    return store.current(config.directory, config.reload_seconds)


def reload_policies() -> PolicyBundle:
    """Check the policy files now; raise ``PolicyInvalid`` if no good set is in force."""
    return store.reload(policy_directory())


def _on_reload(bundle: PolicyBundle) -> None:
    _decision_cache.clear()


store.on_reload.append(_on_reload)


# --- Deciding -----------------------------------------------------------------------


def _cache_key(principal: Any, action: str, resource: Any, context: Mapping[str, Any] | None) -> tuple[Any, ...] | None:
    """A key naming every input of a decision by version, or None when one is unversioned."""
    registered = kinds_by_model.get(type(principal))
    if registered is not None:
        principal_key: tuple[Any, ...] = registered.cache_key(principal)
    elif isinstance(principal, PrincipalFacts) and principal.facts_version is not None:
        principal_key = (principal.kind, principal.id, principal.facts_version)
    else:
        return None  # users' groups are not versioned: always decided afresh
    if isinstance(resource, ResourceFacts) and resource.facts_version is not None:
        resource_key: tuple[Any, ...] = (resource.kind, resource.id, resource.facts_version)
    else:
        return None
    if context:
        try:
            context_key: Any = tuple(sorted(context.items()))
            hash(context_key)
        except TypeError:
            return None
    else:
        context_key = None
    return (principal_key, action, resource_key, context_key)


class StaleFacts(InvalidInput):
    """Facts read before an instant that changes them (an expiry, a lapsing
    exception), asked about after it: deciding on them could allow what is
    now forbidden, so the decision is a denial that says to read them again."""

    code = "stale_facts"

    def __init__(self, facts: ResourceFacts, until: float) -> None:
        when = dt.datetime.fromtimestamp(until, tz=dt.UTC).isoformat()
        super().__init__(
            f"the facts of {facts.kind} {facts.id} held until {when} (an expiry or a quarantine "
            "exception ends then); read them again to decide",
            field="resource",
        )


def decide(
    principal: Any,
    action: str,
    resource: Any,
    context: Mapping[str, Any] | None = None,
    *,
    use_cache: bool = True,
) -> Decision:
    """May ``principal`` do ``action`` to ``resource``? Answer with reasons.

    ``principal``: a Django user, a registered principal object (a
    ``serving.Consumer``, see ``policies.principals``) or ``PrincipalFacts``.
    ``resource``: a ``DatasetVersion``, ``ResourceFacts``, or an asset with a
    ``policy_facts()`` method. ``context``: e.g. ``{"purpose": "support"}``.
    Never raises: any error is a denying ``error`` decision, logged as such.
    """
    try:
        bundle = current_policies()
        key = _cache_key(principal, action, resource, context) if use_cache else None
        if key is not None:
            entry = _decision_cache.get(key)
            if entry is not None:
                cached, until = entry
                if cached.policy_digest == bundle.digest and (until is None or time.time() < until):
                    decision_log.record(cached, cached=True)
                    return cached
        if action not in ACTIONS:
            raise InvalidInput(f"unknown action {action!r}: use {', '.join(ACTIONS)}", field="action")
        facts = resource_facts(resource)
        until = facts.valid_until
        if until is not None and time.time() >= until:
            raise StaleFacts(facts, until)
        request = DecisionRequest(principal_facts(principal), action, facts, context or {})
        decision = evaluator.decide(bundle, request)
        if key is not None and decision.outcome != "error":
            if len(_decision_cache) >= _DECISION_CACHE_MAX:
                _decision_cache.clear()
            _decision_cache[key] = (decision, until)
    except Exception as error:  # fail closed
        decision = error_decision(
            getattr(error, "message", None) or f"{type(error).__name__}: {error}",
            principal=_describe(principal),
            action=str(action),
            resource=_describe(resource),
            context=context,
            policy_digest=store.bundle.digest if store.bundle else "",
        )
    if decision.outcome == "error":
        logger.error("policy decision failed, denied: %s %s %s: %s", decision.principal, action, decision.resource, decision.reason)
    decision_log.record(decision)
    return decision


def decide_many(requests: Sequence[tuple[Any, str, Any, Mapping[str, Any] | None]], *, log: bool = True) -> list[Decision]:
    """Decide many (principal, action, resource, context) requests in one engine call.

    Each request is answered as ``decide`` would; one that cannot be built is
    an error decision, the others are still decided.
    """
    try:
        bundle = current_policies()
    except Exception as error:
        decisions = [
            error_decision(str(getattr(error, "message", error)), principal=_describe(p), action=a, resource=_describe(r), context=c)
            for p, a, r, c in requests
        ]
        return _logged(decisions, log)
    built: list[DecisionRequest | Decision] = []
    for principal, action, resource, context in requests:
        try:
            if action not in ACTIONS:
                raise InvalidInput(f"unknown action {action!r}", field="action")
            facts = resource_facts(resource)
            if facts.valid_until is not None and time.time() >= facts.valid_until:
                raise StaleFacts(facts, facts.valid_until)
            built.append(DecisionRequest(principal_facts(principal), action, facts, context or {}))
        except Exception as error:
            built.append(
                error_decision(
                    getattr(error, "message", None) or str(error),
                    principal=_describe(principal),
                    action=str(action),
                    resource=_describe(resource),
                    context=context,
                    policy_digest=bundle.digest,
                )
            )
    to_decide = [item for item in built if isinstance(item, DecisionRequest)]
    answers = iter(evaluator.decide_batch(bundle, to_decide))
    decisions = [next(answers) if isinstance(item, DecisionRequest) else item for item in built]
    return _logged(decisions, log)


def _logged(decisions: list[Decision], log: bool) -> list[Decision]:
    if log:
        for decision in decisions:
            decision_log.record(decision)
    return decisions


def _describe(thing: Any) -> str:
    if isinstance(thing, PrincipalFacts | ResourceFacts):
        return f"{thing.kind}::{thing.id}"
    registered = principal_kind_of(thing)
    if registered is not None:
        return f"{registered.kind}::{registered.label(thing)}"
    if hasattr(thing, "get_username"):
        return f"User::{thing.get_username() or 'anonymous'}"
    return f"{type(thing).__name__}::{getattr(thing, 'pk', '?')}"


def clear_decision_cache() -> None:
    """Forget cached decisions (tests, benchmarks)."""
    _decision_cache.clear()
    evaluator.clear()




def policy_status() -> dict[str, Any]:
    """The policy set in force and the outcome of the last check of the files."""
    error: PolicyInvalid | None = None
    try:
        bundle: PolicyBundle | None = current_policies()
    except PolicyInvalid as invalid:
        bundle, error = None, invalid
    error = error or store.last_error
    return {
        "directory": str(policy_directory()),
        "digest": bundle.digest if bundle else "",
        "loaded_at": dt.datetime.fromtimestamp(bundle.loaded_at, tz=dt.UTC).isoformat() if bundle else None,
        "files": bundle.files if bundle else [],
        "policies": [
            {"id": info.id, "file": info.file, "line": info.line, "effect": info.effect, "reason": info.reason}
            for info in sorted(bundle.policies.values(), key=lambda info: (info.file, info.line))
        ]
        if bundle
        else [],
        "last_error": {"message": error.message, "problems": [p.as_dict() for p in error.problems]} if error else None,
        "decision_log": {
            "mode": policy_settings().log_mode,
            "pending": decision_log.pending(),
        },
    }
