"""Settings for the test suite: the real settings with a test secret key.

DATABASE_URL still selects the database, so the same suite runs on SQLite
and on PostgreSQL.
"""

import os
from pathlib import Path

os.environ.setdefault("SECRET_KEY", "pedigree-test-secret-key-not-for-production")
os.environ.setdefault("CELERY_TASK_ALWAYS_EAGER", "1")
# The policy decision log is flushed by tests themselves, not by a thread.
os.environ.setdefault("PEDIGREE_DECISION_LOG_FLUSH_SECONDS", "0")

from pedigree.settings import *  # noqa: E402,F403
from pedigree.settings import DATABASES  # noqa: E402

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast personas
# New versions are not scanned for PII unless a test turns it on (scans load spaCy).
PEDIGREE_PII_AUTO_SCAN = False

# SQLite's test database is a file next to the configured one, not memory:
# tests start real worker processes (tests/test_worker_*.py) that open it too.
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3" and DATABASES["default"]["NAME"] not in ("", ":memory:"):
    _sqlite_path = Path(DATABASES["default"]["NAME"])
    DATABASES["default"]["TEST"] = {"NAME": str(_sqlite_path.with_name("test_" + _sqlite_path.name))}
