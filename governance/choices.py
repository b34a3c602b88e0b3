"""Enumerations of the governance app."""

from django.db import models


class VersionStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    REVOKED = "revoked", "Revoked"
    EXPIRED = "expired", "Expired"


class DataFormat(models.TextChoices):
    JSONL = "jsonl", "JSON Lines"
    CSV = "csv", "CSV with a header"
    TEXT = "text", "Plain text"
    PARQUET = "parquet", "Parquet"


class RecordLayout(models.TextChoices):
    """How a record holds its training text."""

    TEXT = "text", "text"
    PROMPT_COMPLETION = "prompt_completion", "prompt + completion"
    CHAT = "chat", "chat messages"
    TABLE = "table", "table columns"


class ConsentBasis(models.TextChoices):
    """The lawful basis on which the data was collected (GDPR Art. 6 terms)."""

    UNSPECIFIED = "unspecified", "Not specified"
    CONSENT = "consent", "Consent"
    CONTRACT = "contract", "Contract"
    LEGAL_OBLIGATION = "legal_obligation", "Legal obligation"
    VITAL_INTERESTS = "vital_interests", "Vital interests"
    PUBLIC_TASK = "public_task", "Public task"
    LEGITIMATE_INTERESTS = "legitimate_interests", "Legitimate interests"
    PUBLIC_DOMAIN = "public_domain", "Public domain / no personal data"


class PiiStatus(models.TextChoices):
    """Where a version's PII scanning stands. Unscanned, scanning and scan_failed
    mean nobody knows what personal data it holds: see ``PII_SCAN_INCOMPLETE``."""

    UNSCANNED = "unscanned", "Not scanned"
    SCANNING = "scanning", "Scanning"
    SCAN_FAILED = "scan_failed", "Scan failed"
    CLEAN = "clean", "Clean"
    PII_FOUND = "pii_found", "PII found"
    REVIEWED = "reviewed", "Reviewed"


# A version in one of these states carries "PII scan incomplete" as a lineage
# fact: the shipped policies deny training on it and serving anything made from it.
PII_SCAN_INCOMPLETE = frozenset({PiiStatus.UNSCANNED, PiiStatus.SCANNING, PiiStatus.SCAN_FAILED})


class Purpose(models.TextChoices):
    """Purposes a consumer may declare; data allows a subset of them."""

    SUPPORT = "support", "Customer support"
    ANALYTICS = "analytics", "Analytics"
    RESEARCH = "research", "Research"
    MARKETING = "marketing", "Marketing"
    PRODUCT = "product", "Product features"
    INTERNAL_TOOLS = "internal_tools", "Internal tools"
    FRAUD_PREVENTION = "fraud_prevention", "Fraud prevention"


class Region(models.TextChoices):
    """Residency regions data may be served in."""

    EU = "eu", "European Union"
    US = "us", "United States"
    UK = "uk", "United Kingdom"
    CA = "ca", "Canada"
    APAC = "apac", "Asia-Pacific"
    GLOBAL = "global", "Anywhere"


class AuditAction(models.TextChoices):
    DATASET_CREATED = "dataset.created"
    DATASET_UPDATED = "dataset.updated"
    DATASET_OWNERSHIP_CHANGED = "dataset.ownership_changed"
    TRANSFER_REQUESTED = "dataset.transfer_requested"
    TRANSFER_DECLINED = "dataset.transfer_declined"
    TRANSFER_CANCELLED = "dataset.transfer_cancelled"
    VERSION_CREATED = "dataset_version.created"
    VERSION_GOVERNANCE_UPDATED = "dataset_version.governance_updated"
    VERSION_REVOKED = "dataset_version.revoked"
    VERSION_EXPIRED = "dataset_version.expired"
    VERSION_DOWNLOADED = "dataset_version.downloaded"


class TransferStatus(models.TextChoices):
    """Where a request to hand a dataset to another team (or steward) stands."""

    PENDING = "pending", "Pending"
    ACCEPTED = "accepted", "Accepted"
    DECLINED = "declined", "Declined"
    CANCELLED = "cancelled", "Cancelled"
