from django.apps import AppConfig


class PoliciesConfig(AppConfig):
    """The policy engine: policies as files, decisions with reasons (later issues)."""

    name = "policies"
    verbose_name = "Policies"
