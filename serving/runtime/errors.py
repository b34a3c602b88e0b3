"""Errors the engine returns to its callers, shaped like OpenAI's."""

from __future__ import annotations

from typing import Any


class EngineError(Exception):
    """A request the engine refuses: an HTTP status and an OpenAI-style error body."""

    status = 400
    error_type = "BadRequestError"

    def __init__(self, message: str, *, param: str | None = None, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        if status is not None:
            self.status = status

    def body(self) -> dict[str, Any]:
        """The JSON body OpenAI's clients read: {"error": {message, type, param, code}}."""
        return {
            "error": {
                "message": self.message,
                "type": self.error_type,
                "param": self.param,
                "code": self.status,
            }
        }


class InvalidRequest(EngineError):
    """Bad parameters or a prompt longer than the context (400)."""


class NotFound(EngineError):
    """An unknown model or adapter (404)."""

    status = 404
    error_type = "NotFoundError"


class AdapterVerificationError(EngineError):
    """An adapter file whose sha256 differs from the expected digest, or is missing one (400)."""


class EngineUnavailable(EngineError):
    """The engine is shutting down or its scheduler died (503)."""

    status = 503
    error_type = "ServiceUnavailableError"


class GenerationFailed(EngineError):
    """A forward pass failed (out of memory, a broken adapter): the engine's fault, not the caller's (500)."""

    status = 500
    error_type = "InternalServerError"
