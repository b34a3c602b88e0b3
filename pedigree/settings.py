"""Django settings for Pedigree, read from the environment (12-factor).

Every setting that differs between a laptop and production comes from an
environment variable. The defaults are the embedded ones: SQLite in ``var/``,
a Celery broker that needs no server, artifacts in a local folder. A bad value
stops the process at start-up with a message that names the variable.
"""

from __future__ import annotations

import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from pedigree.files import create_private_dir, create_private_file

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("PEDIGREE_VAR", BASE_DIR / "var"))

_DEFAULT_SECRET_KEY = "pedigree-insecure-development-key"


def env_bool(name: str, default: bool) -> bool:
    """Read a boolean variable; refuse anything that is not clearly yes or no."""
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name}={raw!r} is not a boolean: use 1/0, true/false, yes/no or on/off")


def env_int(name: str, default: int) -> int:
    """Read a positive integer variable."""
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw.replace("_", ""))
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not an integer") from None
    if value <= 0:
        raise ImproperlyConfigured(f"{name}={raw!r} must be positive")
    return value


def env_list(name: str, default: list[str]) -> list[str]:
    """Read a comma-separated list variable."""
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


DEBUG = env_bool("DEBUG", False)

SECRET_KEY = os.environ.get("SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY is not set. Production settings (DEBUG off) refuse to start with a "
            "default secret key: set SECRET_KEY to a long random string, or DEBUG=1 for development. "
            "(`make run` writes one to var/secret_key, which manage.py reads when SECRET_KEY is unset.)"
        )
    SECRET_KEY = _DEFAULT_SECRET_KEY
elif SECRET_KEY == _DEFAULT_SECRET_KEY and not DEBUG:
    raise ImproperlyConfigured("SECRET_KEY is the development default; set a real one in production.")

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI's files, served from here: /api/docs/ works offline
    "pedigree",
    "governance",
    "policies",
    "customization",
    "serving",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "pedigree.urls"
WSGI_APPLICATION = "pedigree.wsgi.application"
ASGI_APPLICATION = "pedigree.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "pedigree" / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database -----------------------------------------------------------------
DATABASE_URL = os.environ.get("DATABASE_URL") or f"sqlite:///{VAR_DIR / 'pedigree.sqlite3'}"
try:
    _database = dj_database_url.parse(DATABASE_URL, conn_max_age=60)
except Exception as error:  # dj_database_url raises several types
    raise ImproperlyConfigured(f"DATABASE_URL={DATABASE_URL!r} is not a database URL: {error}") from None
if _database["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets readers proceed while one writer writes; IMMEDIATE takes the write
    # lock when a transaction begins, so two writers queue instead of deadlocking.
    _database["CONN_MAX_AGE"] = 0
    _database["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=10000;",
        "transaction_mode": "IMMEDIATE",
    }
    if _database["NAME"] not in ("", ":memory:") and not str(_database["NAME"]).startswith("file:"):
        # The database holds every token and audit row: only this user may read it.
        # SQLite gives its -wal and -shm files the database file's permissions.
        create_private_file(Path(_database["NAME"]))
DATABASES = {"default": _database}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Celery -------------------------------------------------------------------
# The embedded default is kombu's filesystem transport: no server process, and
# measured at ~100 tasks/s here, ample for scans and fine-tunes (see docs).
_CELERY_QUEUE_DIR = VAR_DIR / "celery" / "queue"
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", "filesystem://")
CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, object] = {}
if CELERY_BROKER_URL.startswith("filesystem://"):
    create_private_dir(_CELERY_QUEUE_DIR)
    create_private_dir(VAR_DIR / "celery" / "processed")
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_CELERY_QUEUE_DIR),
        "data_folder_out": str(_CELERY_QUEUE_DIR),
        "processed_folder": str(VAR_DIR / "celery" / "processed"),
        "control_folder": str(VAR_DIR / "celery" / "control"),
        "store_processed": False,
    }
CELERY_RESULT_BACKEND = os.environ.get("CELERY_RESULT_BACKEND") or None
CELERY_TASK_IGNORE_RESULT = CELERY_RESULT_BACKEND is None
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = env_int("CELERY_TASK_TIME_LIMIT", 6 * 3600)
CELERY_TASK_DEFAULT_QUEUE = "default"

# --- Artifacts ----------------------------------------------------------------
# A local folder, or s3://bucket/prefix (AWS_ENDPOINT_URL for S3-compatible stores).
PEDIGREE_ARTIFACTS = os.environ.get("PEDIGREE_ARTIFACTS", str(VAR_DIR / "artifacts"))
AWS_ENDPOINT_URL = os.environ.get("AWS_ENDPOINT_URL") or None
# Where datasets may be registered from by URI without uploading. A local path
# outside these folders is refused, so a user cannot make the server read
# arbitrary files. S3 URIs are allowed for the buckets listed (or any, with "*").
# Both default to none (registration by URI is off until an admin names its
# sources); the artifact store itself is never a source.
PEDIGREE_IMPORT_ROOTS = env_list("PEDIGREE_IMPORT_ROOTS", [])
PEDIGREE_IMPORT_BUCKETS = env_list("PEDIGREE_IMPORT_BUCKETS", [])

# --- Ingest limits --------------------------------------------------------------
PEDIGREE_MAX_UPLOAD_BYTES = env_int("PEDIGREE_MAX_UPLOAD_BYTES", 20 * 1024**3)
PEDIGREE_MAX_RECORD_BYTES = env_int("PEDIGREE_MAX_RECORD_BYTES", 16 * 1024**2)

# --- PII scanning (governance/pii) -----------------------------------------------
# Scan each new dataset version automatically; the scanner configuration file
# (default: governance/pii/config/scanner.yaml); seconds without a heartbeat
# after which a running scan's worker counts as dead (the scan is resumed).
PEDIGREE_PII_AUTO_SCAN = env_bool("PEDIGREE_PII_AUTO_SCAN", True)
PEDIGREE_PII_CONFIG = os.environ.get("PEDIGREE_PII_CONFIG", "")
PEDIGREE_PII_SCAN_STALE_SECONDS = env_int("PEDIGREE_PII_SCAN_STALE_SECONDS", 120)

# Django spools multipart uploads above this size to a temporary file, so a
# large multipart upload is never held in memory. Raw-body uploads stream.
FILE_UPLOAD_MAX_MEMORY_SIZE = 4 * 1024**2
FILE_UPLOAD_TEMP_DIR = os.environ.get("FILE_UPLOAD_TEMP_DIR") or None
DATA_UPLOAD_MAX_MEMORY_SIZE = 8 * 1024**2

# --- Policies -------------------------------------------------------------------
# The policy files (Cedar) and their schema; checked at start-up and reloaded
# when they change (checked at most every PEDIGREE_POLICY_RELOAD_SECONDS).
PEDIGREE_POLICY_DIR = Path(os.environ.get("PEDIGREE_POLICY_DIR") or BASE_DIR / "policies")
# Which decisions the decision log keeps: all, denials (and errors), sampled
# (denials, errors and a PEDIGREE_DECISION_LOG_SAMPLE_RATE fraction of the
# allowed ones) or off (errors only). Written in batches of 2,000 by the thread
# that fills one, and by a background thread for what has waited
# PEDIGREE_DECISION_LOG_FLUSH_SECONDS (0: only on flush()).
PEDIGREE_DECISION_LOG = os.environ.get("PEDIGREE_DECISION_LOG", "all")
if PEDIGREE_DECISION_LOG not in {"all", "denials", "sampled", "off"}:
    raise ImproperlyConfigured(
        f"PEDIGREE_DECISION_LOG={PEDIGREE_DECISION_LOG!r}: use all, denials, sampled or off"
    )
try:
    PEDIGREE_POLICY_RELOAD_SECONDS = float(os.environ.get("PEDIGREE_POLICY_RELOAD_SECONDS") or 1.0)
    PEDIGREE_DECISION_LOG_SAMPLE_RATE = float(os.environ.get("PEDIGREE_DECISION_LOG_SAMPLE_RATE") or 0.1)
    PEDIGREE_DECISION_LOG_FLUSH_SECONDS = float(os.environ.get("PEDIGREE_DECISION_LOG_FLUSH_SECONDS") or 1.0)
except ValueError as _error:
    raise ImproperlyConfigured(f"a PEDIGREE_POLICY_* or PEDIGREE_DECISION_LOG_* setting is not a number: {_error}") from None
if not 0 <= PEDIGREE_DECISION_LOG_SAMPLE_RATE <= 1:
    raise ImproperlyConfigured("PEDIGREE_DECISION_LOG_SAMPLE_RATE must lie between 0 and 1")

# --- Auth, API ----------------------------------------------------------------
# Roles (pedigree/roles.py): admins (superusers or the "admins" group) hold every
# console permission, auditors (the "auditors" group) every view permission.
AUTHENTICATION_BACKENDS = ["django.contrib.auth.backends.ModelBackend", "pedigree.roles.RoleBackend"]

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # Token first: an anonymous API call then gets 401 with WWW-Authenticate.
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_FILTER_BACKENDS": [
        "django_filters.rest_framework.DjangoFilterBackend",
        "rest_framework.filters.SearchFilter",
        "rest_framework.filters.OrderingFilter",
    ],
    # JSON nested past pedigree.parsers.MAX_JSON_DEPTH is a 400, never a RecursionError (500).
    "DEFAULT_PARSER_CLASSES": [
        "pedigree.parsers.DepthLimitedJSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    # ?limit= is capped at 1,000 and a malformed ?limit= or ?offset= is a 400.
    "DEFAULT_PAGINATION_CLASS": "pedigree.pagination.BoundedLimitOffsetPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "pedigree.api.exception_handler",
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Pedigree API",
    "DESCRIPTION": "Governed model customization: dataset catalog, lineage, policies, fine-tunes, serving.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    # Swagger UI and Redoc from drf-spectacular-sidecar's static files, not a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = DEBUG

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "INFO"}},
}

CELERY_BEAT_SCHEDULE = {
    "expire-dataset-versions": {"task": "governance.expire_dataset_versions", "schedule": 3600.0},
    "recover-stale-pii-scans": {"task": "governance.recover_stale_pii_scans", "schedule": 60.0},
}
