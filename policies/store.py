"""The policy store: the policy set in force, reloaded when its files change.

Pure Python, no Django import.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

from policies.loading import (
    PolicyBundle,
    PolicyInvalid,
    PolicyProblem,
    load_policy_directory,
    sources_signature,
)

logger = logging.getLogger(__name__)


class PolicyStore:
    """Holds the policy set in force and reloads it when the files change.

    A change is validated before it is used: an invalid change keeps the last
    good set and is reported in ``last_error``. Checks for changes happen at
    most every ``interval`` seconds, so a decision usually costs one clock read.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._bundle: PolicyBundle | None = None
        self._directory: str | None = None
        self._directory_given: object = None
        self._signature: tuple[tuple[str, int, int], ...] | None = None
        self._next_check = 0.0
        self.last_error: PolicyInvalid | None = None
        self.last_checked_at = 0.0
        self.on_reload: list[Callable[[PolicyBundle], None]] = []

    def current(self, directory: Path | str, interval: float = 1.0) -> PolicyBundle:
        """The policy set in force for ``directory``; raises ``PolicyInvalid`` if none is good."""
        bundle = self._bundle
        if (
            bundle is not None
            and time.monotonic() < self._next_check
            and (directory is self._directory_given or self._directory == str(directory))
        ):
            return bundle
        with self._lock:
            self._refresh(str(directory))
            self._directory_given = directory
            self._next_check = time.monotonic() + interval
        if self._bundle is None:
            raise self.last_error or PolicyInvalid([PolicyProblem(str(directory), 0, "no policies loaded")])
        return self._bundle

    def reload(self, directory: Path | str) -> PolicyBundle:
        """Check the files now, whatever the interval; returns the set in force."""
        with self._lock:
            self._signature = None if self._directory == str(directory) else self._signature
            self._refresh(str(directory))
        if self._bundle is None:
            raise self.last_error or PolicyInvalid([PolicyProblem(str(directory), 0, "no policies loaded")])
        return self._bundle

    def _refresh(self, directory: str) -> None:
        self.last_checked_at = time.time()
        signature = sources_signature(directory)
        if directory == self._directory and signature == self._signature:
            return
        try:
            bundle = load_policy_directory(directory)
        except PolicyInvalid as error:
            if directory != self._directory:
                self._bundle = None  # never serve another folder's policies
            self._directory = directory
            self._signature = signature
            self.last_error = error
            logger.error("policy change rejected, keeping the last good policy set: %s", error.message)
            return
        previous = self._bundle
        self._bundle, self._directory, self._signature, self.last_error = bundle, directory, signature, None
        if previous is None or previous.digest != bundle.digest:
            if previous is not None:
                logger.info("policy set %s reloaded from %s (%d policies)", bundle.digest[:12], directory, len(bundle.policies))
            for callback in self.on_reload:
                callback(bundle)

    @property
    def bundle(self) -> PolicyBundle | None:
        """The policy set in force, without checking the files."""
        return self._bundle
