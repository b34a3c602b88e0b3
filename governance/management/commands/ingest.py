"""``manage.py ingest PATH --dataset NAME --licence SPDX``: add a version from a file."""

from __future__ import annotations

import datetime as dt
import os
from typing import Any

from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from governance.management.commands._common import acting_user
from governance.models import Dataset
from governance.services import GovernanceInput, do_create_dataset, do_ingest_dataset_version
from pedigree.errors import PedigreeError


class Command(BaseCommand):
    help = "Ingest a file as a new immutable version of a dataset (validated, hashed, stored)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path", help="JSONL, CSV, plain text or Parquet file")
        parser.add_argument("--dataset", required=True, help="dataset name (slug)")
        parser.add_argument("--licence", required=True, help="SPDX id, or proprietary / other")
        parser.add_argument("--licence-text", default="")
        parser.add_argument("--copyright", default="", help="copyright holder")
        parser.add_argument("--purpose", action="append", default=[], help="allowed purpose (repeatable)")
        parser.add_argument("--region", action="append", default=[], help="residency region (repeatable)")
        parser.add_argument("--consent", default="unspecified", help="consent basis")
        parser.add_argument("--expires", type=dt.date.fromisoformat, default=None, help="YYYY-MM-DD")
        parser.add_argument("--notes", default="")
        parser.add_argument("--format", default=None, help="jsonl, csv, text or parquet (default: detect)")
        parser.add_argument("--user", default=None, help="act as this user (default: the first superuser)")
        parser.add_argument("--create", action="store_true", help="create the dataset if it does not exist")
        parser.add_argument("--owner", default=None, help="owning group, with --create")
        parser.add_argument("--title", default="", help="title, with --create")
        parser.add_argument("--no-progress", action="store_true")

    def handle(self, *args: Any, **options: Any) -> None:
        user = acting_user(options["user"])
        path = options["path"]
        if not os.path.isfile(path):
            raise CommandError(f"{path}: no such file")
        dataset = Dataset.objects.filter(name=options["dataset"]).first()
        try:
            if dataset is None:
                if not options["create"]:
                    raise CommandError(f"no dataset named {options['dataset']!r}; pass --create --owner GROUP")
                group = Group.objects.filter(name=options["owner"] or "").first()
                if group is None:
                    raise CommandError("--create needs --owner naming an existing group")
                dataset = do_create_dataset(
                    actor=user, name=options["dataset"], owner_group=group, title=options["title"]
                )
            governance = GovernanceInput(
                licence=options["licence"],
                licence_text=options["licence_text"],
                copyright_holder=options["copyright"],
                allowed_purposes=options["purpose"],
                consent_basis=options["consent"],
                residency_regions=options["region"],
                expires_at=options["expires"],
                notes=options["notes"],
            )
            size = os.path.getsize(path)
            with open(path, "rb") as source, tqdm(
                total=size, unit="B", unit_scale=True, desc=os.path.basename(path),
                disable=options["no_progress"], file=self.stderr._out,
            ) as bar:
                done = 0

                def progress(total: int) -> None:
                    nonlocal done
                    bar.update(total - done)
                    done = total

                outcome = do_ingest_dataset_version(
                    actor=user,
                    dataset=dataset,
                    source=source,
                    filename=os.path.basename(path),
                    governance=governance,
                    declared_format=options["format"],
                    on_progress=progress,
                )
        except PedigreeError as error:
            raise CommandError(error.message) from None
        version = outcome.version
        verb = "created" if outcome.created else "already stored as"
        self.stdout.write(
            f"{verb} {version}: {version.record_count:,} records, {version.size_bytes:,} bytes, "
            f"{version.format}/{version.layout}, sha256 {version.sha256}"
        )
