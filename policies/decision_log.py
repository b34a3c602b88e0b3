"""The decision log: decisions buffered in memory and written in bulk.

``PEDIGREE_DECISION_LOG``: all, denials, sampled or off (errors are always
kept), so the request path only appends to a queue.
"""

from __future__ import annotations

import atexit
import collections
import logging
import os
import random
import sqlite3
import threading
import time
from collections.abc import Mapping
from typing import Any

import orjson
from django.db import close_old_connections, connections, router, transaction

from policies.config import policy_settings
from policies.models import DecisionDetail, PolicyDecision, detail_digest
from policies.requests import Decision

logger = logging.getLogger(__name__)


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
        config = policy_settings()
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
