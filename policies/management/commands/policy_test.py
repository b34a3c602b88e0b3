"""``manage.py policy_test``: check the policy files and run their test cases."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from pedigree.errors import InvalidInput
from policies.config import policy_directory
from policies.evaluator import Evaluator
from policies.loading import PolicyInvalid, load_policy_directory
from policies.testing import coverage_gaps, load_cases, run_case


class Command(BaseCommand):
    help = (
        "Validate the policy files against the schema, then run every case in "
        "policies/tests/*.yaml and check that each policy is shown deciding, allowed and denied."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--dir", help="Policy folder (default: PEDIGREE_POLICY_DIR).")
        parser.add_argument("--verbose-cases", action="store_true", help="Print every case, not only failures.")

    def handle(self, *args: Any, **options: Any) -> None:
        directory = Path(options["dir"] or policy_directory())
        try:
            bundle = load_policy_directory(directory)
        except PolicyInvalid as error:
            for problem in error.problems:
                self.stderr.write(str(problem))
            raise CommandError(f"{len(error.problems)} problem(s) in the policy files") from None
        try:
            cases = load_cases(directory)
        except InvalidInput as error:
            raise CommandError(error.message) from None
        evaluator = Evaluator()
        failures = 0
        for case in cases:
            result = run_case(bundle, case, evaluator)
            if not result.passed:
                failures += 1
                self.stdout.write(self.style.ERROR(f"FAIL {case.test_id}: {result.message}"))
            elif options["verbose_cases"]:
                self.stdout.write(f"ok   {case.test_id}: {result.decision.reason}")
        gaps = coverage_gaps(bundle, cases)
        for gap in gaps:
            self.stdout.write(self.style.WARNING(f"GAP  {gap}"))
        summary = (
            f"{len(cases) - failures} of {len(cases)} cases passed; {len(bundle.policies)} policies "
            f"in {len(bundle.sources) - 1} files (policy set {bundle.digest[:12]}); {len(gaps)} coverage gaps"
        )
        if failures or gaps:
            raise CommandError(summary)
        self.stdout.write(self.style.SUCCESS(summary))
