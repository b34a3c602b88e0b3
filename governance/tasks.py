"""Celery tasks of the governance app: thin wrappers around services."""

from __future__ import annotations

from celery import shared_task

from governance.services import do_expire_dataset_versions


@shared_task(name="governance.expire_dataset_versions", queue="default", acks_late=True)
def expire_dataset_versions() -> list[int]:
    """Mark versions whose expiry date has passed as expired (runs hourly from beat)."""
    return [version.pk for version in do_expire_dataset_versions()]
