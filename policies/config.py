"""The policy settings, read once (a decision must not pay for Django's lazy settings)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.signals import setting_changed

LOG_MODES = ("all", "denials", "sampled", "off")


@dataclass(frozen=True)
class PolicySettings:
    """The policy settings, read once: a decision must not pay for Django's lazy
    settings object on every call. Refreshed when a setting changes (tests use
    ``override_settings``) or by ``refresh_settings()``."""

    directory: Path
    reload_seconds: float
    log_mode: str
    sample_rate: float
    flush_seconds: float


_settings: PolicySettings | None = None


def policy_settings() -> PolicySettings:
    """The current policy settings (see ``PolicySettings``)."""
    global _settings
    if _settings is None:
        directory = getattr(settings, "PEDIGREE_POLICY_DIR", None) or Path(settings.BASE_DIR) / "policies"
        _settings = PolicySettings(
            directory=directory if isinstance(directory, Path) else Path(directory),
            reload_seconds=float(getattr(settings, "PEDIGREE_POLICY_RELOAD_SECONDS", 1.0)),
            log_mode=getattr(settings, "PEDIGREE_DECISION_LOG", "all"),
            sample_rate=float(getattr(settings, "PEDIGREE_DECISION_LOG_SAMPLE_RATE", 0.1)),
            flush_seconds=float(getattr(settings, "PEDIGREE_DECISION_LOG_FLUSH_SECONDS", 1.0)),
        )
    return _settings


def refresh_settings(**kwargs: Any) -> None:
    """Read the policy settings again on next use."""
    global _settings
    _settings = None


setting_changed.connect(refresh_settings, dispatch_uid="policies-refresh-settings")


def policy_directory() -> Path:
    """Where the policy files live (``PEDIGREE_POLICY_DIR``)."""
    return policy_settings().directory
