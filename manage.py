#!/usr/bin/env python
"""Django's command-line utility for Pedigree.

In a fresh shell after ``make run``, SECRET_KEY is not in the environment:
the key that ``make run`` wrote to ``var/secret_key`` (``$PEDIGREE_VAR`` when
set) is used, so every ``manage.py`` command in the README runs as written.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path


def use_generated_secret_key() -> None:
    """Set SECRET_KEY from the key file ``make run`` generated, when the environment has none."""
    if os.environ.get("SECRET_KEY"):
        return
    var = Path(os.environ.get("PEDIGREE_VAR") or Path(__file__).resolve().parent / "var")
    key_file = var / "secret_key"
    if key_file.is_file():
        key = key_file.read_text().strip()
        if key:
            os.environ["SECRET_KEY"] = key


if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pedigree.settings")
    use_generated_secret_key()
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
