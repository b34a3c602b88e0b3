"""Serving workflows: every change to a consumer goes through here.

A consumer's groups, PII clearances, purposes, region and commercial use are
what the policies decide ``endpoint.invoke`` on, so only admins change them,
each change is validated before it is written, bumps the consumer's
``facts_version`` (decision caches key on it) and is recorded in the audit
log with who, when, what and why. The API, the admin console and the demo all
call these functions.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from governance.models.audit import record_audit_event
from pedigree.errors import Conflict, InvalidInput, PermissionDenied
from pedigree.types import Actor
from serving.choices import ServingAuditAction
from serving.models import Consumer, is_admin

# What may change after creation. The name may not: the policies and the
# decision log name a consumer by it (Consumer::"web-frontend").
CONSUMER_EDITABLE_FIELDS = ("description", "owner", "groups", "pii_clearances", "purposes", "region", "commercial")
_FACT_FIELDS = ("owner", "groups", "pii_clearances", "purposes", "region", "commercial")


def ensure_may_manage_consumers(actor: Actor | None, verb: str, name: str) -> None:
    """Raise ``PermissionDenied`` unless ``actor`` is an admin."""
    if not is_admin(actor):
        who = actor.get_username() if actor is not None and actor.is_authenticated else "an anonymous user"
        raise PermissionDenied(
            f"{who} may not {verb} consumer {name}: only admins manage consumers, because the "
            "policies trust their clearances, purposes and region",
            field="consumer",
        )


def _require_reason(reason: str, verb: str, name: str) -> str:
    """The reason recorded in the audit log: every change to a consumer needs one."""
    reason = (reason or "").strip()
    if not reason:
        raise InvalidInput(
            f"a reason is required to {verb} consumer {name}: it is recorded in the audit log "
            "(e.g. a ticket, or why the clearance is needed)",
            field="reason",
        )
    return reason


def _plain(value: Any) -> Any:
    if isinstance(value, User):
        return value.get_username()
    if isinstance(value, list | tuple):
        return list(value)
    return value


def _validate(consumer: Consumer) -> None:
    """The model's invariants (``full_clean``) as an ``InvalidInput`` naming the fields."""
    try:
        consumer.full_clean(validate_unique=False)
    except ValidationError as error:
        fields = error.message_dict
        message = "; ".join(f"{field}: {' '.join(messages)}" for field, messages in sorted(fields.items()))
        raise InvalidInput(message, field=sorted(fields)[0], fields=fields) from error


def do_create_consumer(
    *,
    actor: Actor,
    name: str,
    region: str,
    description: str = "",
    owner: User | None = None,
    groups: Iterable[str] = (),
    pii_clearances: Iterable[str] = (),
    purposes: Iterable[str] = (),
    commercial: bool = False,
    reason: str = "",
) -> Consumer:
    """Register an application or service that will call endpoints (admins only, with a reason)."""
    ensure_may_manage_consumers(actor, "create", name)
    reason = _require_reason(reason, "create", name)
    consumer = Consumer(
        name=name,
        description=description,
        owner=owner,
        groups=list(groups),
        pii_clearances=list(pii_clearances),
        purposes=list(purposes),
        region=region,
        commercial=commercial,
    )
    _validate(consumer)
    if Consumer.objects.filter(name=name).exists():
        raise Conflict(f"a consumer named {name} already exists: change it, or choose another name", field="name")
    try:
        with transaction.atomic(durable=True):
            consumer.save()
            record_audit_event(
                actor=actor,
                action=ServingAuditAction.CONSUMER_CREATED,
                target=consumer,
                reason=reason,
                changes={field: _plain(getattr(consumer, field)) for field in _FACT_FIELDS},
            )
    except IntegrityError as error:  # created by someone else since the check above
        raise Conflict(f"a consumer named {name} already exists: change it, or choose another name", field="name") from error
    return consumer


def do_update_consumer(*, actor: Actor, consumer: Consumer, changes: Mapping[str, Any], reason: str = "") -> Consumer:
    """Change a consumer's description, owner or facts (admins only, with a reason).

    The stored row is read under a lock and diffed, so concurrent changes
    neither overwrite each other nor share a ``facts_version``. Nothing that
    does not change is written, bumped or recorded.
    """
    ensure_may_manage_consumers(actor, "change", consumer.name)
    reason = _require_reason(reason, "change", consumer.name)
    unknown = sorted(set(changes) - set(CONSUMER_EDITABLE_FIELDS))
    if unknown:
        hint = " (a consumer's name never changes: create a new consumer)" if "name" in unknown else ""
        raise InvalidInput(f"cannot change {', '.join(unknown)} of a consumer{hint}", field=unknown[0])
    with transaction.atomic(durable=True):
        stored = Consumer.objects.select_for_update().get(pk=consumer.pk)  # no outer join: PostgreSQL cannot lock one
        diff: dict[str, list[Any]] = {}
        for field, value in changes.items():
            new = list(value) if field in {"groups", "pii_clearances", "purposes"} else value
            old = getattr(stored, field)
            if old != new:
                diff[field] = [_plain(old), _plain(new)]
                setattr(stored, field, new)
        if not diff:
            return stored
        _validate(stored)  # raising here rolls back: nothing has been written
        stored.save(update_fields=list(diff))  # also bumps facts_version and updated_at
        record_audit_event(
            actor=actor, action=ServingAuditAction.CONSUMER_UPDATED, target=stored, reason=reason, changes=diff
        )
    return stored


def do_delete_consumer(*, actor: Actor, consumer: Consumer, reason: str = "") -> None:
    """Remove a consumer (admins only, with a reason); the audit log keeps what it was."""
    ensure_may_manage_consumers(actor, "delete", consumer.name)
    reason = _require_reason(reason, "delete", consumer.name)
    with transaction.atomic(durable=True):
        record_audit_event(
            actor=actor,
            action=ServingAuditAction.CONSUMER_DELETED,
            target=consumer,
            reason=reason,
            changes={"facts_version": consumer.facts_version}
            | {field: _plain(getattr(consumer, field)) for field in _FACT_FIELDS},
        )
        consumer.delete()
