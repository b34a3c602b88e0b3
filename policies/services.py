"""The policy engine, Django-facing: decide, log, simulate.

Every governed action asks ``decide(principal, action, resource, context)``:
dataset downloads now, training, deploy, export and invoke in later issues.

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
- The decision log is buffered in memory and written in bulk by a background
  thread (``PEDIGREE_DECISION_LOG``: all, denials, sampled or off), so the
  request path only appends to a queue.
"""

from __future__ import annotations

import atexit
import collections
import datetime as dt
import logging
import os
import random
import sqlite3
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.signals import setting_changed
from django.db import close_old_connections, connections, router, transaction

from pedigree.errors import InvalidInput, NotFound
from policies.engine import (
    ACTION_TARGETS,
    ACTIONS,
    SCHEMA_FILE,
    Decision,
    DecisionRequest,
    Evaluator,
    PolicyBundle,
    PolicyInvalid,
    PolicyProblem,
    PolicyStore,
    PrincipalFacts,
    ResourceFacts,
    compile_policies,
    error_decision,
)
from policies.facts import principal_facts, resource_facts, resources_of_kind
from policies.models import DecisionDetail, PolicyDecision, detail_digest
from serving.models import Consumer

logger = logging.getLogger(__name__)

LOG_MODES = ("all", "denials", "sampled", "off")

store = PolicyStore()
evaluator = Evaluator()
# key -> (decision, the instant it ends in seconds since the epoch, or None)
_decision_cache: dict[tuple[Any, ...], tuple[Decision, float | None]] = {}
_DECISION_CACHE_MAX = 100_000


@dataclass(frozen=True)
class PolicySettings:
    """The policy settings, read once: a decision must not pay for Django's lazy
    settings object on every call. Refreshed when a setting changes (tests use
    ``override_settings``) or by ``refresh_settings()``."""

    directory: Path
    reload_seconds: float
    log_mode: str
    sample_rate: float
    flush_seconds: float


_settings: PolicySettings | None = None


def policy_settings() -> PolicySettings:
    """The current policy settings (see ``PolicySettings``)."""
    global _settings
    if _settings is None:
        directory = getattr(settings, "PEDIGREE_POLICY_DIR", None) or Path(settings.BASE_DIR) / "policies"
        _settings = PolicySettings(
            directory=directory if isinstance(directory, Path) else Path(directory),
            reload_seconds=float(getattr(settings, "PEDIGREE_POLICY_RELOAD_SECONDS", 1.0)),
            log_mode=getattr(settings, "PEDIGREE_DECISION_LOG", "all"),
            sample_rate=float(getattr(settings, "PEDIGREE_DECISION_LOG_SAMPLE_RATE", 0.1)),
            flush_seconds=float(getattr(settings, "PEDIGREE_DECISION_LOG_FLUSH_SECONDS", 1.0)),
        )
    return _settings


def refresh_settings(**kwargs: Any) -> None:
    """Read the policy settings again on next use."""
    global _settings
    _settings = None


setting_changed.connect(refresh_settings, dispatch_uid="policies-refresh-settings")


def policy_directory() -> Path:
    """Where the policy files live (``PEDIGREE_POLICY_DIR``)."""
    return policy_settings().directory


def current_policies() -> PolicyBundle:
    """The policy set in force, reloaded first if its files changed."""
    config = _settings or policy_settings()
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
    if isinstance(principal, Consumer):
        principal_key: tuple[Any, ...] = ("Consumer", principal.pk, principal.facts_version)
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

    ``principal``: a Django user, a ``Consumer`` or ``PrincipalFacts``.
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
    if isinstance(thing, Consumer):
        return f"Consumer::{thing.name}"
    if hasattr(thing, "get_username"):
        return f"User::{thing.get_username() or 'anonymous'}"
    return f"{type(thing).__name__}::{getattr(thing, 'pk', '?')}"


def clear_decision_cache() -> None:
    """Forget cached decisions (tests, benchmarks)."""
    _decision_cache.clear()
    evaluator.clear()


# --- The decision log ------------------------------------------------------------------


class DecisionLog:
    """Buffers decisions and writes them in bulk, in batches.

    ``record`` appends a tuple of strings to an in-memory queue. Whoever fills
    a batch of ``TRANSACTION_ROWS`` writes it, in one transaction: under load
    that is the deciding thread itself, once every 2,000 decisions, so no
    other thread competes with it for the GIL (a busy writer thread beside
    threads that call Cedar, which releases the GIL on every call, slowed both
    several-fold). Every ``PEDIGREE_DECISION_LOG_FLUSH_SECONDS`` a daemon
    thread per process writes the decisions that have waited that long, so a
    quiet process logs each decision within about twice that time. With that
    setting at 0 nothing is written by itself: call ``flush()`` (tests do).
    A batch that cannot be written goes back to the front of the queue and is
    tried again; one that fails ``MAX_ATTEMPTS`` times in a row is dropped
    (and the error logged), so one bad row cannot stop the log. Errors are always logged; allowed decisions follow
    the mode (``all``, ``denials``: none, ``sampled``: a
    ``PEDIGREE_DECISION_LOG_SAMPLE_RATE`` fraction); ``off`` logs nothing but
    errors.

    What a decision said (policies, facts, reason) is stored once per distinct
    explanation (``DecisionDetail``) and each row points to it. The same inputs
    under the same policy set always say the same (the inputs digest covers
    everything the reason quotes), so once a detail is committed its
    (inputs digest, policy digest) is remembered and later decisions on those
    inputs queue only the row: the explanation is composed, serialised and
    written once per question, not once per call, and when it is, by the
    writer rather than at decision time.
    """

    MAX_BUFFER = 200_000
    MAX_KNOWN = 50_000
    MAX_ATTEMPTS = 3
    # Rows per batch and transaction. Larger batches mean fewer flushes on
    # the deciding path (each one costs the next few decisions a cold CPU
    # cache); 2,000 rows take ~20 ms to write, once per 2,000 decisions.
    TRANSACTION_ROWS = 2000

    def __init__(self) -> None:
        self._buffer: collections.deque[tuple[Any, ...]] = collections.deque()
        # inputs digest -> (policy digest, the question's row: principal,
        # action, resource, outcome, inputs digest, policy digest, detail
        # digest), for questions whose detail is committed.
        self._known: dict[str, tuple[str, tuple[str, ...]]] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._wake = threading.Event()
        self._stopping = False
        self._failures = 0  # consecutive failed writes of the batch at the front
        self.dropped = 0

    def record(self, decision: Decision, *, cached: bool = False) -> None:
        """Queue a decision for the log, as the mode says."""
        config = _settings or policy_settings()
        if decision.outcome != "error":
            mode = config.log_mode
            if mode == "off":
                return
            if decision.allowed and mode != "all":
                if mode == "denials":
                    return
                if random.random() >= config.sample_rate:
                    return
            known = self._known.get(decision.inputs_digest)
            question = known[1] if known is not None and known[0] == decision.policy_digest else None
        else:
            question = None  # error messages vary: each error keeps its own detail
        if len(self._buffer) >= self.MAX_BUFFER:
            self._buffer.popleft()
            self.dropped += 1
        # Queued: (microseconds since the epoch, cached, the question's row)
        # for a question asked before, sharing that row; otherwise (time,
        # cached, None, the decision), explained and stored by the writer.
        # Small and shared on purpose: what the queue holds on to between
        # batches costs every decision some memory traffic.
        now = time.time_ns() // 1000
        self._buffer.append((now, cached, question) if question is not None else (now, cached, None, decision))
        if config.flush_seconds > 0:
            if self._thread is None:
                self._start_thread()
            if len(self._buffer) >= self.TRANSACTION_ROWS:
                self._flush_here()

    def pending(self) -> int:
        """How many decisions wait to be written."""
        return len(self._buffer)

    def discard(self) -> None:
        """Drop what is queued and forget which details are stored (tests)."""
        self._buffer.clear()
        self._known.clear()

    def flush(self, *, older_than: float = 0.0) -> int:
        """Write every queued decision now (with ``older_than``, only those
        queued at least that many seconds ago); returns how many were written.

        Up to ``TRANSACTION_ROWS`` rows per transaction (one commit per row
        would cost more than the rows), each chunk with its new details. A
        chunk that fails goes back to the queue (see the class docstring) and
        the error is raised; the remembered details are forgotten then, in
        case the failure took some with it.
        """
        with self._lock:
            # What is queued now, not what producers add meanwhile: a flush
            # that chased a busy producer would never end.
            limit = len(self._buffer)
            if older_than > 0:
                cutoff = time.time_ns() // 1000 - int(older_than * 1_000_000)
                limit = next((index for index, row in enumerate(self._buffer) if row[0] > cutoff), limit)
            return self._flush_locked(limit=limit)

    def _flush_locked(self, limit: int) -> int:
        written = 0
        while self._buffer and written < limit:
            chunk: list[tuple[Any, ...]] = []
            while self._buffer and len(chunk) < self.TRANSACTION_ROWS:
                chunk.append(self._buffer.popleft())
            try:
                self._write(chunk)
            except Exception:
                self._known.clear()
                self._failures += 1
                if self._failures < self.MAX_ATTEMPTS:
                    self._buffer.extendleft(reversed(chunk))
                else:
                    self._failures = 0
                    self.dropped += len(chunk)
                    logger.error("dropped %d policy decisions that could not be written %d times", len(chunk), self.MAX_ATTEMPTS)
                raise
            self._failures = 0
            written += len(chunk)
        return written

    def _flush_here(self) -> None:
        """Write a full batch from the thread that filled it (see the class docstring).

        Skipped when another thread is writing, or when the caller is inside
        a transaction (a rollback there must not take logged decisions with
        it): the writer thread or a later call writes them then. Never raises.
        """
        connection = connections[router.db_for_write(PolicyDecision)]
        if connection.in_atomic_block or not self._lock.acquire(blocking=False):
            return
        try:
            self._flush_locked(limit=self.TRANSACTION_ROWS)
        except Exception:
            logger.exception("could not write the policy decision log; the writer thread will retry")
        finally:
            self._lock.release()

    def _write(self, chunk: list[tuple[Any, ...]]) -> None:
        details: dict[str, tuple[str, str, str, str]] = {}
        learned: list[tuple[str, tuple[str, tuple[str, ...]]]] = []
        rows: list[tuple[Any, ...]] = []
        for item in chunk:
            decided, cached, question = item[0], item[1], item[2]
            if question is None:
                decision = item[3]
                parts = decision.log_detail()  # the explanation is composed here, off the request path
                digest = detail_digest(*parts)
                details[digest] = parts
                question = (
                    decision.principal[:200],
                    decision.action[:32],
                    decision.resource[:300],
                    decision.outcome,
                    decision.inputs_digest,
                    decision.policy_digest,
                    digest,
                )
                if decision.outcome != "error" and decision.inputs_digest:
                    learned.append((decision.inputs_digest, (decision.policy_digest, question)))
            principal, action, resource, outcome, inputs, policy, detail = question
            rows.append((decided, principal, action, resource, outcome, cached, inputs, policy, detail))
        connection = connections[router.db_for_write(PolicyDecision)]
        with transaction.atomic(using=connection.alias):
            _insert_rows(connection, details, rows)
            if learned:
                transaction.on_commit(lambda: self._learn(learned), using=connection.alias)

    def _learn(self, learned: list[tuple[str, tuple[str, tuple[str, ...]]]]) -> None:
        """Remember committed details, so later decisions on the same inputs queue only their row."""
        if len(self._known) + len(learned) > self.MAX_KNOWN:
            self._known.clear()
        self._known.update(learned)

    def _start_thread(self) -> None:
        with self._lock:
            if self._thread is not None:
                return
            self._thread = threading.Thread(target=self._run, name="policy-decision-log", daemon=True)
            self._thread.start()

    def _after_fork(self) -> None:
        """A forked child (a Celery or gunicorn worker) starts its own writer."""
        self._thread = None
        self._lock = threading.Lock()
        self._buffer.clear()  # the parent writes what it queued

    def stop(self) -> None:
        """Stop this process's writer thread after one last flush (tests, shutdown)."""
        thread, self._thread = self._thread, None
        self._stopping = True
        self._wake.set()
        if thread is not None:
            thread.join(timeout=10)
        self._stopping = False
        self._wake.clear()  # a later writer thread must not take this wake-up as its own

    def _run(self) -> None:
        while not self._stopping:
            interval = policy_settings().flush_seconds or 1.0
            self._wake.wait(interval)
            self._wake.clear()
            try:
                # Only what has waited a while: under load the deciding
                # threads write full batches themselves, and this thread
                # must not compete with them (see the class docstring).
                self.flush(older_than=0 if self._stopping else interval)
            except Exception:
                logger.exception("could not write the policy decision log; will retry")
            finally:
                try:
                    close_old_connections()
                except Exception:
                    logger.debug("could not close the decision log writer's connection", exc_info=True)


def _insert_rows(connection: Any, details: Mapping[str, tuple[str, str, str, str]], rows: list[tuple[Any, ...]]) -> None:
    """Insert new details (skipping any already stored), then the rows, with
    plain SQL rather than model instances. The database turns the queued
    microseconds into its timestamp. PostgreSQL gets the rows as one JSON
    array (one round trip); SQLite, in process, takes them bound row by row."""
    quote = connection.ops.quote_name
    postgres = connection.vendor == "postgresql"
    json_cast = "::jsonb" if postgres else ""
    with connection.cursor() as cursor:
        if details:
            cursor.executemany(
                f"INSERT INTO {quote(DecisionDetail._meta.db_table)} (digest, context, policies, facts, reason) "
                f"VALUES (%s, %s{json_cast}, %s{json_cast}, %s{json_cast}, %s) ON CONFLICT (digest) DO NOTHING",
                [(digest, *parts) for digest, parts in details.items()],
            )
        meta = PolicyDecision._meta
        columns = ", ".join(quote(meta.get_field(name).column) for name in _LOG_COLUMNS)  # type: ignore[union-attr,arg-type]
        table = quote(meta.db_table)
        if postgres:
            cursor.execute(f"INSERT INTO {table} ({columns}) {_POSTGRES_ROWS}", [orjson.dumps(rows).decode()])
        else:
            # sqlite3's own executemany, past Django's %s-to-? rewriting: the
            # statement uses numbered parameters (the time twice) and strftime's %.
            sqlite3.Cursor.executemany(cursor.cursor, f"INSERT INTO {table} ({columns}) VALUES {_SQLITE_ROW}", rows)


# A queued row: microseconds since the epoch, principal, action, resource,
# outcome, cached, inputs digest, policy digest, detail digest. SQLite keeps
# an aware datetime as naive UTC text with microseconds, as Django does.
_SQLITE_ROW = (
    "(strftime('%Y-%m-%d %H:%M:%S', ?1 / 1000000, 'unixepoch') || printf('.%06d', ?1 % 1000000), "
    "substr(?2, 1, 200), substr(?3, 1, 32), substr(?4, 1, 300), ?5, ?6, ?7, ?8, ?9)"
)
_POSTGRES_ROWS = """
    SELECT timestamptz 'epoch' + (value->>0)::bigint * interval '1 microsecond',
           left(value->>1, 200), left(value->>2, 32), left(value->>3, 300), value->>4, (value->>5)::boolean,
           value->>6, value->>7, value->>8
    FROM jsonb_array_elements(%s::jsonb) WITH ORDINALITY AS rows(value, position) ORDER BY position
"""

_LOG_COLUMNS = (
    "decided_at",
    "principal",
    "action",
    "resource",
    "outcome",
    "cached",
    "inputs_digest",
    "policy_digest",
    "detail",
)

decision_log = DecisionLog()
os.register_at_fork(after_in_child=decision_log._after_fork)


@atexit.register
def _flush_at_exit() -> None:  # pragma: no cover - process shutdown
    if decision_log.pending():
        try:
            decision_log.flush()
        except Exception:
            logger.exception("could not write %d queued policy decisions at exit", decision_log.pending())


# --- Simulation ---------------------------------------------------------------------


def _consumers() -> list[Consumer]:
    return list(Consumer.objects.order_by("name"))


def _users() -> list[Any]:
    users = list(get_user_model().objects.filter(is_active=True).order_by("username").prefetch_related("groups"))
    for user in users:
        # facts_for_user reads this instead of querying each user's groups again
        user._policy_group_names = frozenset(group.name for group in user.groups.all())  # type: ignore[attr-defined]
    return users


def who_may_invoke(endpoint: ResourceFacts, context: Mapping[str, Any] | None = None) -> list[tuple[Consumer, Decision]]:
    """Which consumers may call ``endpoint``? Every consumer, with its decision.

    A simulation: nothing is logged.
    """
    consumers = _consumers()
    decisions = decide_many([(consumer, "endpoint.invoke", endpoint, context) for consumer in consumers], log=False)
    return list(zip(consumers, decisions, strict=True))


def endpoints_for(consumer: Consumer, context: Mapping[str, Any] | None = None) -> list[tuple[ResourceFacts, Decision]]:
    """Which endpoints may ``consumer`` call? Every known endpoint, with its decision.

    A simulation: nothing is logged.
    """
    endpoints = resources_of_kind("Endpoint")
    decisions = decide_many([(consumer, "endpoint.invoke", endpoint, context) for endpoint in endpoints], log=False)
    return list(zip(endpoints, decisions, strict=True))


@dataclass
class DecisionChange:
    """One decision that a proposed policy change would change."""

    principal: str
    action: str
    resource: str
    before: Decision
    after: Decision

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON values for the API."""
        return {
            "principal": self.principal,
            "action": self.action,
            "resource": self.resource,
            "before": {"outcome": self.before.outcome, "policies": list(self.before.policies), "reason": self.before.reason},
            "after": {"outcome": self.after.outcome, "policies": list(self.after.policies), "reason": self.after.reason},
        }


@dataclass
class PolicyDiff:
    """What would change if a policy file were applied: problems, or the changed decisions."""

    file: str
    valid: bool
    problems: list[PolicyProblem] = field(default_factory=list)
    evaluated: int = 0
    changes: list[DecisionChange] = field(default_factory=list)
    current_digest: str = ""
    proposed_digest: str = ""

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON values for the API."""
        return {
            "file": self.file,
            "valid": self.valid,
            "problems": [problem.as_dict() for problem in self.problems],
            "evaluated": self.evaluated,
            "changed": len(self.changes),
            "changes": [change.as_dict() for change in self.changes],
            "current_digest": self.current_digest,
            "proposed_digest": self.proposed_digest,
        }


MAX_SIMULATED_DECISIONS = 50_000


def _check_policy_file_name(name: str) -> str:
    clean = name.strip().lstrip("/")
    parts = clean.split("/")
    valid = (
        clean == SCHEMA_FILE
        or (len(parts) == 1 and clean.endswith(".cedar"))
        or (len(parts) == 2 and parts[0] == "owners" and parts[1].endswith(".cedar"))
    )
    if not valid or any(part in {"", ".", ".."} for part in parts):
        raise InvalidInput(
            f"{name!r} is not a policy file name: use <name>.cedar, owners/<team>.cedar or {SCHEMA_FILE}",
            field="file",
        )
    return clean


def all_requests() -> list[tuple[Any, str, Any, None]]:
    """Every (principal, action, resource) pair the schema allows, over everything known."""
    users, consumers = _users(), _consumers()
    principals = {"User": users, "Consumer": consumers}
    resources = {kind: resources_of_kind(kind) for kind in ("DatasetVersion", "ModelVersion", "Endpoint")}
    requests: list[tuple[Any, str, Any, None]] = []
    for action, (principal_kind, resource_kind) in ACTION_TARGETS.items():
        for resource in resources[resource_kind]:
            for principal in principals[principal_kind]:
                requests.append((principal, action, resource, None))
    return requests


def simulate_policy_change(file: str, content: str | None) -> PolicyDiff:
    """What would change if ``file`` had ``content`` (``None``: if it were deleted)?

    Checks the proposed set as start-up would, then decides every
    principal x action x resource pair under the current and the proposed set
    and returns the decisions that differ. Nothing is logged or changed.
    """
    name = _check_policy_file_name(file)
    current = current_policies()
    sources = dict(current.sources)
    if content is None:
        if name not in sources:
            raise NotFound(f"there is no policy file {name} to delete", field="file")
        del sources[name]
    else:
        sources[name] = content
    diff = PolicyDiff(file=name, valid=False, current_digest=current.digest)
    try:
        proposed = compile_policies(sources)
    except PolicyInvalid as error:
        diff.problems = error.problems
        return diff
    diff.valid, diff.proposed_digest = True, proposed.digest
    requests = all_requests()[:MAX_SIMULATED_DECISIONS]
    built = []
    for principal, action, resource, context in requests:
        built.append(DecisionRequest(principal_facts(principal), action, resource_facts(resource), context or {}))
    simulator = Evaluator()
    before = simulator.decide_batch(current, built)
    after = simulator.decide_batch(proposed, built)
    diff.evaluated = len(built)
    for request, old, new in zip(built, before, after, strict=True):
        if old.outcome != new.outcome or old.policies != new.policies:
            diff.changes.append(
                DecisionChange(
                    principal=request.principal.display,
                    action=request.action,
                    resource=request.resource.label,
                    before=old,
                    after=new,
                )
            )
    return diff


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


# --- References: principals and resources named in API calls and commands ---------------


def resolve_principal(reference: Mapping[str, Any]) -> Any:
    """A principal from ``{"user": name}``, ``{"consumer": name}`` or ``{"facts": {...}}``."""
    from policies.engine import principal_from_data

    if "facts" in reference:
        return principal_from_data(reference["facts"])
    if "consumer" in reference:
        consumer = Consumer.objects.filter(name=reference["consumer"]).first()
        if consumer is None:
            raise NotFound(f"no consumer named {reference['consumer']!r}", field="principal.consumer")
        return consumer
    if "user" in reference:
        user = get_user_model().objects.filter(username=reference["user"]).first()
        if user is None:
            raise NotFound(f"no user named {reference['user']!r}", field="principal.user")
        return user
    raise InvalidInput('name the principal as {"user": ...}, {"consumer": ...} or {"facts": {...}}', field="principal")


def resolve_resource(reference: Mapping[str, Any]) -> ResourceFacts:
    """A resource from ``{"kind": ..., "id": ...}`` (e.g. DatasetVersion claims-2024/v1,
    Endpoint support-bot) or inline ``{"facts": {...}}``."""
    from policies.engine import resource_from_data
    from policies.facts import find_resource

    if "facts" in reference:
        return resource_from_data(reference["facts"])
    kind, resource_id = reference.get("kind"), reference.get("id")
    if not kind or not resource_id:
        raise InvalidInput('name the resource as {"kind": ..., "id": ...} or {"facts": {...}}', field="resource")
    return find_resource(str(kind), str(resource_id))
