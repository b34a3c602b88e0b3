from django.apps import AppConfig


class PedigreeConfig(AppConfig):
    """The shared kernel: storage, API base classes, health checks, demo data."""

    name = "pedigree"
    verbose_name = "Pedigree"
