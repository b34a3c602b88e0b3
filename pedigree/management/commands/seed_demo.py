"""``manage.py seed_demo``: create the demo people, teams and datasets (idempotent)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from pedigree import demo


class Command(BaseCommand):
    help = "Seed the demo: an admin account, teams, people with API tokens, sample datasets."

    def handle(self, *args: Any, **options: Any) -> None:
        self.stdout.write("Seeding the demo:")
        demo.seed(self.stdout)
        self.stdout.write("Demo ready.")
