"""PII scans of dataset versions, their findings, the steward's review, redactions.

A scan report never holds raw PII: per field and entity type it keeps counts,
records affected, the score distribution and a few masked samples. Reports are
kept: a rescan (with another configuration) adds a report, it never replaces one.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q


class PiiScanStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    COMPLETED = "completed", "Completed"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


class PiiScanTrigger(models.TextChoices):
    AUTOMATIC = "automatic", "New version"
    ON_DEMAND = "on_demand", "On demand"
    REDACTION = "redaction", "After redaction"


class PiiJobStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    COMPLETED = "completed", "Completed"
    FAILED = "failed", "Failed"


class PiiReviewDecision(models.TextChoices):
    CONFIRMED = "confirmed", "Confirmed"
    DISMISSED = "dismissed", "Dismissed"


ACTIVE_SCAN_STATUSES = (PiiScanStatus.QUEUED, PiiScanStatus.RUNNING)


class PiiScan(models.Model):
    """One scan of one dataset version with one configuration: progress while
    it runs (and a checkpoint to resume from), the report when it is done."""

    version = models.ForeignKey("governance.DatasetVersion", on_delete=models.PROTECT, related_name="pii_scans")
    status = models.CharField(max_length=16, choices=PiiScanStatus.choices, default=PiiScanStatus.QUEUED)
    trigger = models.CharField(max_length=16, choices=PiiScanTrigger.choices, default=PiiScanTrigger.ON_DEMAND)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    requested_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(
        null=True, blank=True, help_text="Last sign of life of the worker running it; stale means it died."
    )
    attempts = models.PositiveSmallIntegerField(default=0)
    worker = models.CharField(max_length=200, blank=True)
    cancel_requested = models.BooleanField(default=False)

    records_total = models.PositiveBigIntegerField(default=0)
    records_done = models.PositiveBigIntegerField(default=0)

    config = models.JSONField(default=dict, help_text="The scanner configuration used.")
    config_digest = models.CharField(max_length=64, help_text="sha256 of the settings that decide the findings.")
    presidio_version = models.CharField(max_length=32, blank=True)
    spacy_version = models.CharField(max_length=32, blank=True)
    model_name = models.CharField(max_length=100, blank=True)
    model_version = models.CharField(max_length=32, blank=True)
    ner_available = models.BooleanField(null=True, help_text="False: names and places were not scanned.")
    entities_scanned = models.JSONField(default=list, blank=True)
    not_scanned_entities = models.JSONField(
        default=list, blank=True, help_text="Entity types this scan could not look for (no NER model)."
    )

    found_entity_types = models.JSONField(default=list, blank=True)
    totals = models.JSONField(
        default=dict, blank=True, help_text="records, texts, characters scanned; empty fields; problems."
    )
    problems = models.JSONField(default=list, blank=True, help_text="Records that could not be scanned fully.")
    checkpoint = models.JSONField(
        null=True, blank=True, help_text="Aggregates so far, to resume an interrupted scan (no raw PII)."
    )
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-requested_at", "-pk"]
        indexes = [models.Index(fields=["status"]), models.Index(fields=["version", "status"])]
        constraints = [
            models.CheckConstraint(condition=Q(status__in=PiiScanStatus.values), name="pii_scan_status_valid"),
        ]

    def __str__(self) -> str:
        return f"PII scan #{self.pk} of {self.version}"

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE_SCAN_STATUSES

    @property
    def progress(self) -> float:
        """Fraction of records done, 0 to 1."""
        if self.status == PiiScanStatus.COMPLETED:
            return 1.0
        return min(self.records_done / self.records_total, 1.0) if self.records_total else 0.0

    @property
    def outcome(self) -> str:
        """What the report says: clean, pii_found, or '' while not completed."""
        if self.status != PiiScanStatus.COMPLETED:
            return ""
        return "pii_found" if self.found_entity_types else "clean"


class PiiFinding(models.Model):
    """What a scan found of one entity type in one field: never the values."""

    scan = models.ForeignKey(PiiScan, on_delete=models.CASCADE, related_name="findings")
    field = models.CharField(max_length=200)
    entity_type = models.CharField(max_length=64)
    count = models.PositiveBigIntegerField()
    records = models.PositiveBigIntegerField(help_text="Records in which this field holds the type.")
    score_min = models.FloatField()
    score_max = models.FloatField()
    score_mean = models.FloatField()
    histogram = models.JSONField(default=list, help_text="Counts of scores in ten buckets of 0.1.")
    samples = models.JSONField(default=list, help_text="A few findings with the value masked.")

    class Meta:
        ordering = ["entity_type", "field"]
        constraints = [
            models.UniqueConstraint(fields=["scan", "field", "entity_type"], name="unique_pii_finding"),
        ]
        indexes = [models.Index(fields=["entity_type"])]

    def __str__(self) -> str:
        return f"{self.entity_type} in {self.field}: {self.count}"


class PiiEntityReview(models.Model):
    """A steward's decision on one entity type found in a version. The
    confirmed types are the version's PII fact (``DatasetVersion.pii_types``)."""

    version = models.ForeignKey("governance.DatasetVersion", on_delete=models.PROTECT, related_name="pii_reviews")
    entity_type = models.CharField(max_length=64)
    decision = models.CharField(max_length=16, choices=PiiReviewDecision.choices)
    reason = models.TextField()
    scan = models.ForeignKey(PiiScan, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    decided_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, related_name="+")
    decided_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["entity_type"]
        constraints = [
            models.UniqueConstraint(fields=["version", "entity_type"], name="unique_pii_review"),
            models.CheckConstraint(condition=Q(decision__in=PiiReviewDecision.values), name="pii_review_decision_valid"),
        ]

    def __str__(self) -> str:
        return f"{self.entity_type} {self.decision} on {self.version}"


class PiiRedaction(models.Model):
    """A redacted copy of a version (made by a worker): which operators, and
    what came of it: the new version, or why it failed."""

    source = models.ForeignKey("governance.DatasetVersion", on_delete=models.PROTECT, related_name="pii_redactions")
    status = models.CharField(max_length=16, choices=PiiJobStatus.choices, default=PiiJobStatus.QUEUED)
    result = models.ForeignKey(
        "governance.DatasetVersion", on_delete=models.PROTECT, related_name="pii_redacted_from", null=True, blank=True
    )
    scan = models.ForeignKey(
        PiiScan, on_delete=models.PROTECT, null=True, blank=True, related_name="+",
        help_text="The report whose configuration the redaction analyses with.",
    )
    reason = models.TextField(blank=True)
    error = models.TextField(blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(
        null=True, blank=True, help_text="Last sign of life of the worker running it (a stale one is recovered)."
    )
    attempts = models.PositiveIntegerField(default=0, help_text="How many workers have claimed it.")
    worker = models.CharField(max_length=200, blank=True)
    operators = models.JSONField(help_text='{"ENTITY_TYPE": {"type": "replace|mask|hash|drop|keep", ...}}')
    config_digest = models.CharField(max_length=64)
    records_in = models.PositiveBigIntegerField(default=0)
    records_out = models.PositiveBigIntegerField(default=0)
    records_dropped = models.PositiveBigIntegerField(default=0)
    entities_redacted = models.JSONField(default=dict, help_text="Count of redacted values per entity type.")
    removed_types = models.JSONField(
        default=list,
        help_text="Entity types actually redacted (replaced, masked, hashed or dropped): what the lineage edge may stop, "
        "less whatever the rescan of the copy still finds.",
    )
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return f"redaction #{self.pk} of {self.source}"


class PiiDatasetSalt(models.Model):
    """The secret salt with which a dataset's redactions hash values: the same
    value hashes alike within the dataset, differently across datasets."""

    dataset = models.OneToOneField("governance.Dataset", on_delete=models.PROTECT, related_name="pii_salt")
    salt = models.CharField(max_length=64)

    def __str__(self) -> str:
        return f"hash salt of {self.dataset}"
