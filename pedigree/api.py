"""The shared API kernel: the exception handler that maps domain errors to HTTP,
and the plain 404 and 500 answers (parsers and pagination: ``pedigree.parsers``,
``pedigree.pagination``)."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import (
    HttpRequest,
    HttpResponse,
    HttpResponseNotFound,
    HttpResponseServerError,
    JsonResponse,
)
from rest_framework import permissions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from pedigree.errors import PedigreeError
from pedigree.roles import is_admin, reads_everything


class IsPlatformAdmin(permissions.BasePermission):
    """Admins only: superusers and the ``admins`` group (``is_staff`` alone is a
    console login, not admin; see ``pedigree.roles``)."""

    message = "only admins may do this (superusers and members of the admins group)"

    def has_permission(self, request: Any, view: Any) -> bool:
        return is_admin(request.user)


class AdminsOrAuditorsReading(permissions.BasePermission):
    """Reads for admins and auditors, writes for admins only."""

    message = "only admins and auditors may read this, and only admins may change it"

    def has_permission(self, request: Any, view: Any) -> bool:
        if request.method in permissions.SAFE_METHODS:
            return reads_everything(request.user)
        return is_admin(request.user)


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """Map ``PedigreeError`` and Django ``ValidationError`` to JSON error bodies.

    Every error body has the shape ``{"error": {"code", "message", ...details}}``
    so that clients handle all failures the same way.
    """
    if isinstance(exc, RecursionError):
        # A last line of defence: input nested so deeply that code walking it ran
        # out of stack. It is the input's fault, and nothing was changed.
        return Response(
            {"error": {"code": "invalid", "message": "the request nests data too deeply to process"}},
            status=status.HTTP_400_BAD_REQUEST,
        )
    if isinstance(exc, PedigreeError):
        return Response({"error": exc.as_dict()}, status=exc.http_status)
    if isinstance(exc, DjangoValidationError):
        fields = exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages}
        message = "; ".join(f"{field}: {' '.join(msgs)}" for field, msgs in fields.items())
        return Response(
            {"error": {"code": "invalid", "message": message, "fields": fields}},
            status=status.HTTP_400_BAD_REQUEST,
        )
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    data = response.data
    if isinstance(data, dict) and set(data) == {"detail"}:
        code = getattr(data["detail"], "code", "error")
        response.data = {"error": {"code": str(code), "message": str(data["detail"])}}
    else:
        message = _flatten(data)
        response.data = {"error": {"code": "invalid", "message": message, "fields": data}}
    return response


def _flatten(data: Any, prefix: str = "") -> str:
    if isinstance(data, dict):
        return "; ".join(_flatten(value, f"{prefix}{key}: ") for key, value in data.items())
    if isinstance(data, list):
        return prefix + " ".join(str(item) if not isinstance(item, dict | list) else _flatten(item) for item in data)
    return f"{prefix}{data}"


# --- Error pages ------------------------------------------------------------------
# With DEBUG off (the default, and what `make run` uses) Django answers an unknown
# URL or an unhandled error with these: JSON in the API's error shape under /api/
# and /serving/, a short plain page elsewhere; never the URL map, settings or source.


def _wants_json(request: HttpRequest) -> bool:
    return request.path.startswith(("/api/", "/serving/"))


def page_not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """404 for a URL that names nothing: no list of the URL patterns."""
    message = "nothing here: see /api/docs/ for the API's routes"
    if _wants_json(request):
        return JsonResponse({"error": {"code": "not_found", "message": message}}, status=404)
    return HttpResponseNotFound(f"Not found: {message}\n", content_type="text/plain; charset=utf-8")


def server_error(request: HttpRequest) -> HttpResponse:
    """500 without a traceback, settings or source (those go to the server's log)."""
    message = "the server failed to answer this request; the error is in the server's log"
    if _wants_json(request):
        return JsonResponse({"error": {"code": "server_error", "message": message}}, status=500)
    return HttpResponseServerError(f"Server error: {message}\n", content_type="text/plain; charset=utf-8")
