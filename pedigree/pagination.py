"""List pagination shared by every API list (``DEFAULT_PAGINATION_CLASS``), and integer query parameters."""

from __future__ import annotations

from rest_framework.pagination import LimitOffsetPagination
from rest_framework.request import Request

from pedigree.errors import InvalidInput


def query_int(request: Request, name: str, *, default: int, minimum: int = 0, maximum: int | None = None, cap: bool = False) -> int:
    """An integer query parameter: 400 naming it when it is not a whole number in range.

    With ``cap``, values above ``maximum`` are lowered to it instead of refused.
    """
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    text = raw.strip()
    if not (text.isascii() and text.isdigit()):
        raise InvalidInput(f"{name}={raw[:40]!r} is not a whole number: give {name} as digits, e.g. {name}={default}", field=name)
    # int() of thousands of digits is slow (and refused past 4,300): anything this long is out of range.
    value = int(text) if len(text) <= 30 else 10**30
    if value < minimum:
        raise InvalidInput(f"{name}={raw!r} is too small: at least {minimum}", field=name)
    if maximum is not None and value > maximum:
        if cap:
            return maximum
        raise InvalidInput(f"{name}={raw[:40]!r} is too large: at most {maximum}", field=name)
    return value


class BoundedLimitOffsetPagination(LimitOffsetPagination):
    """``?limit=`` and ``?offset=``: whole numbers or 400; ``limit`` capped at ``max_limit``.

    DRF's own class silently ignores a malformed value and lets any limit
    through, which a database cannot take (``?limit=99999999999999999999``
    overflowed SQLite's and PostgreSQL's integers: a 500).
    """

    max_limit = 1000
    max_offset = 2**62  # past any table; beyond it databases overflow

    def get_limit(self, request: Request) -> int:
        """The page size asked for, at most ``max_limit``."""
        return query_int(request, self.limit_query_param, default=int(self.default_limit or 50), minimum=1, maximum=self.max_limit, cap=True)

    def get_offset(self, request: Request) -> int:
        """Where the page starts (a non-negative whole number)."""
        return query_int(request, self.offset_query_param, default=0, minimum=0, maximum=self.max_offset)
