"""The policies app: the policy set is checked when the service starts."""

from __future__ import annotations

from django.apps import AppConfig
from django.core.exceptions import ImproperlyConfigured


class PoliciesConfig(AppConfig):
    """The policy engine: policies as files, decisions with reasons.

    ``ready`` loads and validates the policy files: a file that does not parse
    or does not validate against the schema stops the service from starting,
    with the file, line and message.
    """

    name = "policies"
    verbose_name = "Policies"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from policies.decisions import current_policies
        from policies.loading import PolicyInvalid

        try:
            current_policies()
        except PolicyInvalid as error:
            lines = "\n".join(f"  {problem}" for problem in error.problems)
            raise ImproperlyConfigured(
                f"The policy files are invalid; Pedigree will not start until they are fixed:\n{lines}"
            ) from None
