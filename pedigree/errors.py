"""Domain exceptions raised by services, mapped to HTTP once in ``pedigree.api``.

Each carries a machine-readable ``code``, a message a person can act on, and
optional ``details`` naming the file, line, row and field at fault.
"""

from __future__ import annotations

from typing import Any


class PedigreeError(Exception):
    """Base of every error a service raises on purpose."""

    code = "error"
    http_status = 400

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = {key: value for key, value in details.items() if value is not None}

    def as_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, **self.details}


class InvalidInput(PedigreeError):
    """The request or the uploaded data is wrong; nothing was changed."""

    code = "invalid"
    http_status = 400


class NotFound(PedigreeError):
    code = "not_found"
    http_status = 404


class PermissionDenied(PedigreeError):
    code = "permission_denied"
    http_status = 403


class Conflict(PedigreeError):
    """The request is valid but clashes with the current state (e.g. a revoked version)."""

    code = "conflict"
    http_status = 409


class ImmutableField(PedigreeError):
    """Someone tried to change a field that never changes once stored."""

    code = "immutable"
    http_status = 400
