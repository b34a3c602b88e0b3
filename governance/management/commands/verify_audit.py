"""``manage.py verify_audit``: recompute the audit log's hash chain."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from governance.models.audit import verify_chain


class Command(BaseCommand):
    help = "Verify the hash chain of the audit log; exits non-zero if it was tampered with."

    def handle(self, *args: Any, **options: Any) -> None:
        report = verify_chain()
        for problem in report.problems:
            self.stderr.write(problem)
        if not report.ok:
            raise CommandError(f"audit log broken: {len(report.problems)} problem(s) in {report.events_checked} events")
        self.stdout.write(f"audit log intact: {report.events_checked} events verified")
