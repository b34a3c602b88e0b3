"""Shapes of the PII API: scans with their progress and report, reviews, redactions."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from governance.models.pii import (
    PiiEntityReview,
    PiiFinding,
    PiiRedaction,
    PiiReviewDecision,
    PiiScan,
)
from governance.pii.entity_types import describe_unknown, unknown_entity_types


class PiiFindingSerializer(serializers.ModelSerializer):
    class Meta:
        model = PiiFinding
        fields = [
            "field",
            "entity_type",
            "count",
            "records",
            "score_min",
            "score_max",
            "score_mean",
            "histogram",
            "samples",
        ]
        read_only_fields = fields


class PiiScanSerializer(serializers.ModelSerializer):
    """A scan: its progress while it runs, its report when it is done."""

    dataset = serializers.CharField(source="version.dataset.name", read_only=True)
    version = serializers.IntegerField(source="version.number", read_only=True)
    requested_by: serializers.SlugRelatedField = serializers.SlugRelatedField(slug_field="username", read_only=True)
    progress = serializers.SerializerMethodField()
    outcome = serializers.CharField(read_only=True)
    notes = serializers.SerializerMethodField()
    findings = PiiFindingSerializer(many=True, read_only=True)
    entities = serializers.SerializerMethodField()

    class Meta:
        model = PiiScan
        fields = [
            "id",
            "dataset",
            "version",
            "status",
            "trigger",
            "outcome",
            "requested_by",
            "requested_at",
            "started_at",
            "finished_at",
            "progress",
            "cancel_requested",
            "attempts",
            "config_digest",
            "config",
            "presidio_version",
            "spacy_version",
            "model_name",
            "model_version",
            "ner_available",
            "entities_scanned",
            "not_scanned_entities",
            "notes",
            "found_entity_types",
            "entities",
            "totals",
            "problems",
            "error",
            "findings",
        ]
        read_only_fields = fields

    def get_progress(self, scan: PiiScan) -> dict[str, Any]:
        return {
            "records_done": scan.records_total if scan.status == "completed" else scan.records_done,
            "records_total": scan.records_total,
            "fraction": round(scan.progress, 4),
        }

    def get_entities(self, scan: PiiScan) -> dict[str, Any]:
        return dict((scan.totals or {}).get("entities", {}))

    def get_notes(self, scan: PiiScan) -> list[str]:
        notes = []
        if scan.ner_available is False or scan.not_scanned_entities:
            kinds = ", ".join(scan.not_scanned_entities) or "PERSON, LOCATION"
            notes.append(
                f"No NER model was available: names and places ({kinds}) were NOT scanned; "
                "their absence from this report says nothing about the data."
            )
        totals = scan.totals or {}
        if totals.get("non_latin_records"):
            notes.append(
                f"{totals['non_latin_records']} records are mostly in a script the English pipeline does not "
                "know: pattern recognizers ran on them, but names and places there may be missed."
            )
        if totals.get("problem_count"):
            notes.append(f"{totals['problem_count']} problems with records; see problems.")
        return notes


class PiiScanRequestSerializer(serializers.Serializer):
    score_threshold = serializers.FloatField(required=False, min_value=0.0, max_value=1.0)
    entities = serializers.ListField(child=serializers.CharField(max_length=64), required=False)


class PiiReviewRequestSerializer(serializers.Serializer):
    entity_type = serializers.CharField(max_length=64, help_text="An entity type the scanner reports, e.g. US_SSN.")
    decision = serializers.ChoiceField(choices=PiiReviewDecision.choices)
    reason = serializers.CharField()

    def validate_entity_type(self, value: str) -> str:
        """Only a type the scanner knows: a review of "person" or "BOGUS" would review nothing."""
        if unknown_entity_types([value]):
            raise serializers.ValidationError(describe_unknown([value]))
        return value


class PiiEntityReviewSerializer(serializers.ModelSerializer):
    decided_by: serializers.SlugRelatedField = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = PiiEntityReview
        fields = ["entity_type", "decision", "reason", "scan", "decided_by", "decided_at"]
        read_only_fields = fields


class PiiRedactRequestSerializer(serializers.Serializer):
    operators = serializers.JSONField(
        help_text='{"DEFAULT": {"type": "replace"}, "US_SSN": {"type": "hash"}, "EMAIL_ADDRESS": {"type": "mask"}, '
        '"CREDIT_CARD": {"type": "drop"}}'
    )
    reason = serializers.CharField(required=False, allow_blank=True, default="")


class PiiRedactionSerializer(serializers.ModelSerializer):
    source = serializers.CharField(source="source.label", read_only=True)  # type: ignore[assignment]
    result = serializers.CharField(source="result.label", read_only=True, allow_null=True, default=None)
    result_number = serializers.IntegerField(source="result.number", read_only=True, allow_null=True, default=None)
    requested_by: serializers.SlugRelatedField = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = PiiRedaction
        fields = [
            "id",
            "source",
            "status",
            "error",
            "reason",
            "result",
            "result_number",
            "operators",
            "config_digest",
            "records_in",
            "records_out",
            "records_dropped",
            "entities_redacted",
            "requested_by",
            "created_at",
            "started_at",
            "finished_at",
        ]
        read_only_fields = fields
