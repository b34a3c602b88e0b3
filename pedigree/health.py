"""Liveness (/healthz) and readiness (/readyz: database, broker, storage)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from django.db import connection
from django.http import HttpRequest, JsonResponse

from pedigree.storage import get_store

logger = logging.getLogger(__name__)


def healthz(request: HttpRequest) -> JsonResponse:
    """The process is up and answering."""
    return JsonResponse({"status": "ok"})


def _check_database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()


def _check_broker() -> None:
    from pedigree.celery import app

    with app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, timeout=2)


def _check_storage() -> None:
    get_store().check()


CHECKS: dict[str, Callable[[], None]] = {
    "database": _check_database,
    "broker": _check_broker,
    "storage": _check_storage,
}


def _may_see_errors(request: HttpRequest) -> bool:
    """Only a signed-in admin sees why a check failed: exception text names hosts, paths and buckets."""
    try:
        user = getattr(request, "user", None)  # reading the session needs the database, which may be down
        return bool(user is not None and user.is_authenticated and user.is_superuser)
    except Exception:
        return False


def readyz(request: HttpRequest) -> JsonResponse:
    """Ready when the database, the broker and the artifact store answer; 503 otherwise.

    A failed check is logged with its exception; the answer names the check and,
    only for a signed-in admin, the exception (anonymous load balancers and
    strangers learn which part is down, not its address or credentials).
    """
    detailed = _may_see_errors(request)
    results: dict[str, dict[str, object]] = {}
    ready = True
    for name, check in CHECKS.items():
        started = time.perf_counter()
        try:
            check()
            results[name] = {"ok": True}
        except Exception as error:
            ready = False
            logger.warning("readiness check %s failed: %s: %s", name, type(error).__name__, error)
            results[name] = {
                "ok": False,
                "error": f"{type(error).__name__}: {error}" if detailed else f"{name} is unreachable (details in the server log)",
            }
        results[name]["ms"] = round((time.perf_counter() - started) * 1000, 1)
    return JsonResponse({"status": "ready" if ready else "unavailable", "checks": results}, status=200 if ready else 503)
