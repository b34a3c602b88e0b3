"""Request body parsers shared by every API view (``DEFAULT_PARSER_CLASSES``)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

#: How deeply a JSON request body may nest. No endpoint takes more than a few
#: levels; a bound keeps a hostile body from exhausting the interpreter's stack
#: (a 1,000-deep array makes the standard decoder raise RecursionError) or
#: from reaching code that walks it recursively (serializers, orjson, audit diffs).
MAX_JSON_DEPTH = 32


def json_depth_exceeds(value: Any, limit: int) -> bool:
    """Whether ``value`` (parsed JSON) nests lists and objects deeper than ``limit``, walked without recursion."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Iterable[Any] = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


class DepthLimitedJSONParser(JSONParser):
    """DRF's JSON parser, answering 400 (not 500) for a body nested deeper than ``MAX_JSON_DEPTH``."""

    max_depth = MAX_JSON_DEPTH

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Mapping[str, Any] | None = None) -> Any:
        """Parse the body, then refuse it if it nests too deeply."""
        message = f"the JSON body nests lists and objects more than {self.max_depth} deep; no field takes that"
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError(message) from None
        if json_depth_exceeds(data, self.max_depth):
            raise ParseError(message)
        return data
