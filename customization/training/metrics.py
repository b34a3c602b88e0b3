"""One small logger interface for training events (steps, evals, checkpoints, the end).

Events are plain dicts with a ``type`` (``start``, ``step``, ``eval``,
``checkpoint``, ``cancelled``, ``done``). The JSON-lines file is what the
Celery side tails for job events; the callback is for in-process listeners.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol


class MetricsLogger(Protocol):
    """Where training events go."""

    def log(self, event: dict[str, Any]) -> None:
        """Record one event."""

    def close(self) -> None:
        """Flush and release resources."""


class JsonlMetricsLogger:
    """Appends each event as one JSON line (flushed at once) and passes it to `callback`."""

    def __init__(self, path: str | Path | None, callback: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.path = Path(path) if path is not None else None
        self.callback = callback
        self._handle = None
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._handle = self.path.open("a", encoding="utf-8")

    def log(self, event: dict[str, Any]) -> None:
        """Stamp the event with the wall-clock time, write it, then call the callback."""
        event = {"time": round(time.time(), 3), **event}
        if self._handle is not None:
            self._handle.write(json.dumps(event, sort_keys=True) + "\n")
            self._handle.flush()
        if self.callback is not None:
            self.callback(event)

    def close(self) -> None:
        """Close the file."""
        if self._handle is not None:
            self._handle.close()
            self._handle = None


class NullMetricsLogger:
    """Drops every event (ranks other than 0 log through this)."""

    def log(self, event: dict[str, Any]) -> None:
        """Do nothing."""

    def close(self) -> None:
        """Do nothing."""


def read_events(path: str | Path) -> list[dict[str, Any]]:
    """Every event of a JSON-lines metrics file (a torn last line is skipped)."""
    events = []
    with Path(path).open(encoding="utf-8") as handle:
        for line in handle:
            try:
                events.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return events
