"""Governed writes take the global locks in one order, so they never deadlock.

The lineage graph row and the audit chain head are taken graph first, then
audit head, then the rows a write changes (``lock_for_governed_write``). Before
that order, ingest and revoke took graph then audit while scan requests and
completions took audit then graph: PostgreSQL found deadlocks within seconds
of running them side by side.
"""

from __future__ import annotations

import contextlib
import io
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection

from governance.models import AuditChainHead, DatasetVersion, LineageGraphState
from governance.models.audit import verify_chain
from governance.pii.config import load_config
from governance.pii.engine import get_analyzer
from governance.pii.scans import claim_pii_scan, do_request_pii_scan, run_pii_scan
from governance.services import (
    GovernanceInput,
    do_ingest_dataset_version,
    do_revoke_dataset_version,
    do_update_dataset,
)
from pedigree.errors import Conflict
from tests.conftest import jsonl

RUN_SECONDS = 8.0


def _needs_postgresql() -> None:
    if connection.vendor != "postgresql":
        # The SQLite test database is a shared-cache memory database in which a
        # second writer fails at once instead of waiting: row-lock order cannot
        # be exercised there (and SQLite locks the whole file anyway).
        pytest.skip("lock order needs PostgreSQL's row locks")


def _ingest(dataset: Any, actor: Any) -> DatasetVersion:
    return do_ingest_dataset_version(
        actor=actor,
        dataset=dataset,
        source=io.BytesIO(jsonl({"text": f"claim {uuid.uuid4()}"}, {"text": "b"})),
        filename="claims.jsonl",
        governance=GovernanceInput(licence="MIT"),
    ).version


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_ingest_revoke_scans_and_dataset_updates_run_together_without_deadlock(
    claims_dataset: Any, alice: Any, erin: Any
) -> None:
    _needs_postgresql()
    get_analyzer(load_config())  # load the scanner once, before the clock starts
    pool = [_ingest(claims_dataset, alice) for _ in range(12)]
    events_before = verify_chain().events_checked
    stop = time.monotonic() + RUN_SECONDS
    counts: dict[str, int] = {}
    errors: list[str] = []
    next_index = iter(range(10_000))
    index_lock = threading.Lock()

    def pick() -> DatasetVersion:
        with index_lock:
            return DatasetVersion.objects.get(pk=pool[next(next_index) % len(pool)].pk)

    def ingest() -> None:
        _ingest(claims_dataset, erin)

    def revoke() -> None:
        version = pick()
        # Already revoked by an earlier round: still a locked read and a refusal.
        with contextlib.suppress(Conflict):
            do_revoke_dataset_version(actor=alice, version=version, reason="consent withdrawn")

    def scan() -> None:
        version = pick()
        try:
            requested = do_request_pii_scan(actor=alice, version=version, enqueue=False)
        except Conflict:
            return  # one with this configuration is already queued or running
        claimed = claim_pii_scan(requested.pk, worker=threading.current_thread().name)
        if claimed is not None:
            run_pii_scan(claimed, workers=1)

    def update() -> None:
        do_update_dataset(actor=alice, dataset=claims_dataset, changes={"title": f"Claims {uuid.uuid4().hex[:8]}"})

    def loop(name: str, step: Callable[[], None]) -> None:
        try:
            while time.monotonic() < stop:
                step()
                counts[name] = counts.get(name, 0) + 1
        except BaseException as error:  # reported below: a deadlock ends up here
            errors.append(f"{name}: {type(error).__name__}: {error}")
        finally:
            connection.close()

    workers = [
        threading.Thread(target=loop, args=(name, step), name=name)
        for name, step in [
            ("ingest", ingest), ("revoke", revoke), ("scan-1", scan), ("scan-2", scan), ("update", update),
        ]
    ]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join(timeout=RUN_SECONDS + 120)
    print(f"operations in {RUN_SECONDS:.0f} s: {counts}")  # shown with -s
    assert not any(thread.is_alive() for thread in workers), "a writer is still waiting: a lock cycle"
    assert not errors, errors
    assert all(counts.get(name, 0) > 0 for name in ("ingest", "revoke", "scan-1", "update")), counts
    report = verify_chain()
    assert report.ok, report.problems
    assert report.events_checked > events_before


@pytest.mark.django_db(transaction=True)
def test_appending_to_the_audit_log_takes_the_graph_row_first(claims_dataset: Any, alice: Any) -> None:
    """``record_audit_event`` holds the graph row too, whatever its caller
    forgot: a graph writer and an audit writer can never each hold one of the
    two rows and wait for the other."""
    _needs_postgresql()
    from django.db import transaction

    from governance.models.audit import record_audit_event

    with transaction.atomic():
        record_audit_event(actor=alice, action="test.appended", target=claims_dataset)
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT relation::regclass::text FROM pg_locks WHERE pid = pg_backend_pid() AND mode = 'RowShareLock'"
            )
            locked_for_update = {row[0] for row in cursor.fetchall()}
    assert {LineageGraphState._meta.db_table, AuditChainHead._meta.db_table} <= locked_for_update
