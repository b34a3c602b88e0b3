from __future__ import annotations

from django.apps import AppConfig


class ServingConfig(AppConfig):
    """Endpoints, consumers and the OpenAI-compatible inference API (later issues).

    ``ready`` registers consumers as principals of the policy engine
    (``policies`` is below ``serving`` and does not import it).
    """

    name = "serving"
    verbose_name = "Serving"

    def ready(self) -> None:
        from policies.principals import register_principal_kind
        from serving.principals import CONSUMER_PRINCIPALS

        register_principal_kind(CONSUMER_PRINCIPALS)
