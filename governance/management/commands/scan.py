"""``manage.py scan DATASET VERSION``: scan a dataset version for PII, with a progress bar.

Runs the scan in this process (with its process pool) and prints the report;
``--queue`` hands it to a Celery worker instead.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from governance.management.commands._common import acting_user
from governance.models import DatasetVersion
from governance.models.pii import PiiScan
from governance.pii.scans import claim_pii_scan, do_request_pii_scan, run_pii_scan, scan_config
from pedigree.errors import PedigreeError


class Command(BaseCommand):
    help = "Scan a dataset version for personal data (Presidio) and print the report."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("dataset", help="dataset name, e.g. claims-2024")
        parser.add_argument("version", type=int, help="version number")
        parser.add_argument("--threshold", type=float, default=None, help="score threshold (0-1); default from the config")
        parser.add_argument("--entities", default=None, help="comma-separated entity types; default all")
        parser.add_argument("--workers", type=int, default=None, help="worker processes (default: one per core)")
        parser.add_argument("--user", default=None, help="act as this user (default: the first superuser)")
        parser.add_argument("--queue", action="store_true", help="queue the scan for a Celery worker and return")
        parser.add_argument("--no-progress", action="store_true")

    def handle(self, *args: Any, **options: Any) -> None:
        user = acting_user(options["user"])
        version = (
            DatasetVersion.objects.select_related("dataset").filter(dataset__name=options["dataset"], number=options["version"]).first()
        )
        if version is None:
            raise CommandError(f"no version {options['version']} of a dataset named {options['dataset']!r}")
        entities = [e.strip() for e in options["entities"].split(",") if e.strip()] if options["entities"] else None
        try:
            config = scan_config(score_threshold=options["threshold"], entities=entities)
            scan = do_request_pii_scan(actor=user, version=version, config=config, enqueue=options["queue"])
            if options["queue"]:
                self.stdout.write(f"queued PII scan #{scan.pk} of {version}")
                return
            claimed = claim_pii_scan(scan.pk, worker="manage.py scan")
            if claimed is None:
                raise CommandError(f"PII scan #{scan.pk} was taken by another worker")
            with tqdm(
                total=version.record_count, unit="rec", desc=f"{version}", disable=options["no_progress"], file=self.stderr._out
            ) as bar:

                def progress(current: PiiScan) -> None:
                    bar.update(current.records_done - bar.n)

                scan = run_pii_scan(claimed, on_progress=progress, workers=options["workers"])
                bar.update(version.record_count - bar.n)
        except PedigreeError as error:
            raise CommandError(error.message) from None
        self._report(scan)
        if scan.status != "completed":
            raise CommandError(f"PII scan #{scan.pk} {scan.status}: {scan.error or 'see the report'}")

    def _report(self, scan: PiiScan) -> None:
        version = DatasetVersion.objects.get(pk=scan.version_id)
        self.stdout.write(
            f"PII scan #{scan.pk} of {version}: {scan.status}, {scan.outcome or '-'}; version PII status {version.pii_status}"
        )
        self.stdout.write(f"  presidio {scan.presidio_version}, model {scan.model_name} {scan.model_version}, config {scan.config_digest[:12]}")
        if scan.not_scanned_entities:
            self.stdout.write(f"  NOT SCANNED (no NER model): {', '.join(scan.not_scanned_entities)}")
        for finding in scan.findings.order_by("entity_type", "field"):
            samples = ", ".join(sample["masked"] for sample in finding.samples[:3])
            self.stdout.write(
                f"  {finding.entity_type:18} {finding.field:20} {finding.count:7} in {finding.records:6} records  "
                f"score {finding.score_mean:.2f}  e.g. {samples}"
            )
        for problem in scan.problems[:10]:
            self.stdout.write(f"  problem: {problem}")
