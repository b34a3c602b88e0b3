from django.apps import AppConfig


class GovernanceConfig(AppConfig):
    """The catalog: datasets and their immutable versions, facts, audit log."""

    name = "governance"
    verbose_name = "Governance"
    default_auto_field = "django.db.models.BigAutoField"
